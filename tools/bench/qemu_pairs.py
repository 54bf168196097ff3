# QEMU 7.2 migrating an image-backed, paused guest over loopback TCP (1 channel and 2 multifd
# channels), beside pagewire src/dst over memif on the same image, interleaved; medians.
# Usage: python3 tools/bench/qemu_pairs.py IMAGE PAIRS   (root; qemu-system-x86 installed;
# PAGEWIRE=path/to/pagewire). Groundwork for `pagewire bench qemu`.
import os, re, socket, statistics, subprocess, sys, time, json
IMG = sys.argv[1]; PAIRS = int(sys.argv[2]); SIZE = os.path.getsize(IMG)
PW = os.environ.get("PAGEWIRE", "build/tools/pagewire")

def hmp(path, cmd):
    s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(5)
    buf = b""
    while b"(qemu)" not in buf: buf += s.recv(65536)
    s.sendall(cmd.encode() + b"\n"); time.sleep(0.05); buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            buf += chunk
            if buf.rstrip().endswith(b"(qemu)"): break
    except socket.timeout: pass
    s.close(); return buf.decode(errors="replace")

def wait_sock(p):
    for _ in range(200):
        if os.path.exists(p): return
        time.sleep(0.05)

def qemu(channels):
    mb = f"{SIZE >> 20}M"
    common = ["qemu-system-x86_64", "-machine", "q35,memory-backend=mem", "-m", mb, "-nographic", "-nodefaults",
              "-display", "none", "-S"]
    for f in ("/tmp/q-src.mon", "/tmp/q-dst.mon"):
        if os.path.exists(f): os.unlink(f)
    dst = subprocess.Popen(common + ["-object", f"memory-backend-file,id=mem,size={mb},mem-path=/dev/shm/qdst,share=on,prealloc=on",
        "-monitor", "unix:/tmp/q-dst.mon,server,nowait", "-incoming", "defer"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    src = subprocess.Popen(common + ["-object", f"memory-backend-file,id=mem,size={mb},mem-path={IMG},share=off",
        "-monitor", "unix:/tmp/q-src.mon,server,nowait"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_sock("/tmp/q-dst.mon"); wait_sock("/tmp/q-src.mon"); time.sleep(0.5)
    for m in ("/tmp/q-src.mon", "/tmp/q-dst.mon"):
        if channels > 1:
            hmp(m, "migrate_set_capability multifd on"); hmp(m, f"migrate_set_parameter multifd-channels {channels}")
    hmp("/tmp/q-src.mon", "migrate_set_parameter max-bandwidth 100000M")
    hmp("/tmp/q-dst.mon", "migrate_incoming tcp:127.0.0.1:4444"); time.sleep(0.2)
    hmp("/tmp/q-src.mon", "migrate -d tcp:127.0.0.1:4444")
    out = ""
    for _ in range(600):
        out = hmp("/tmp/q-src.mon", "info migrate")
        if "Migration status: completed" in out or "failed" in out: break
        time.sleep(0.1)
    src.kill(); dst.kill(); src.wait(); dst.wait()
    os.unlink("/dev/shm/qdst") if os.path.exists("/dev/shm/qdst") else None
    total = re.search(r"total time: (\d+) ms", out); down = re.search(r"downtime: (\d+) ms", out)
    if not total: print("qemu failed:", out[-400:]); return None
    return int(total.group(1)) / 1000, int(down.group(1)) if down else None

def pagewire():
    sock = "/tmp/pwq.sock"
    if os.path.exists(sock): os.unlink(sock)
    dst = subprocess.Popen([PW, "dst", "--vdev", f"net_memif0,role=server,socket={sock},bsize=9216", "--size-mib", str(SIZE >> 20),
                            "--cpu", "1", "--cores", "0", "--idle-sleep-us", "20", "--json"], stdout=subprocess.PIPE, text=True)
    for line in dst.stdout:
        if '"ready"' in line: break
    src = subprocess.run([PW, "src", "--vdev", f"net_memif0,role=client,socket={sock},bsize=9216", "--image", IMG,
                          "--dirty-rate", "0", "--cpu", "0", "--cores", "1", "--idle-sleep-us", "20", "--json"],
                         capture_output=True, text=True)
    dst.wait()
    m = [json.loads(l) for l in src.stdout.splitlines() if '"migrated"' in l]
    if not m: print("pagewire failed:", src.stderr[-300:]); return None
    return m[0]["total_seconds"], m[0]["downtime_ms"]

rows = {"qemu 1 channel": [], "qemu 2 multifd channels": [], "pagewire default": []}
for i in range(PAIRS):
    for name, fn in (("qemu 2 multifd channels", lambda: qemu(2)), ("pagewire default", pagewire), ("qemu 1 channel", lambda: qemu(1))):
        r = fn()
        if r: rows[name].append(r); print(name, r, flush=True)
for name, r in rows.items():
    if r: print(f"{name}: total median {statistics.median(x[0] for x in r):.2f} s ({min(x[0] for x in r):.2f}-{max(x[0] for x in r):.2f}), downtime median {statistics.median(x[1] for x in r if x[1] is not None):.0f} ms ({min(x[1] for x in r):.0f}-{max(x[1] for x in r):.0f})")
