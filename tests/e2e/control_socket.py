#!/usr/bin/env python3
"""The control socket of a running migration (src and dst over memif, two processes; 1 GiB
of incompressible pages sent raw, so that the wire carries what the cap allows): query
answers while it runs; `set max_gbps` moves the rate the wire counters show, up from a
low cap; a bad request is refused with the field named; `cancel` on the source ends both
ends at once, the source saying its guest keeps running and the destination discarding.

Usage: control_socket.py PAGEWIRE
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


class Control:
    def __init__(self, path, timeout_s=20):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    fail(f"no control socket at {path}")
                time.sleep(0.05)
        self.sock.settimeout(10)
        self.pending = b""

    def ask(self, request):
        self.sock.sendall((json.dumps(request) + "\n").encode())
        while b"\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                fail(f"the control socket closed on {request}")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)


def wire_gbps(control, seconds):
    """Payload bytes the source put on the wire over `seconds`, as Gbit/s."""
    first = control.ask({"command": "query"})["status"]
    time.sleep(seconds)
    second = control.ask({"command": "query"})["status"]
    return (second["payload_bytes_sent"] - first["payload_bytes_sent"]) * 8 / 1e9 / seconds


def main():
    pagewire = sys.argv[1]
    work = tempfile.mkdtemp(prefix="pw-control-")
    memif = os.path.join(work, "memif.sock")
    src_control, dst_control = os.path.join(work, "src.ctl"), os.path.join(work, "dst.ctl")
    common = ["--size-mib", "1024", "--timeout-s", "30", "--json"]
    dst = subprocess.Popen([pagewire, "dst", "--vdev", f"net_memif0,role=server,socket={memif}",
                            "--file-prefix", f"pw-ctl-dst-{os.getpid()}", "--control-socket", dst_control] + common,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The source connects once the destination's port is up (its "ready" event).
        deadline = time.monotonic() + 60
        for line in dst.stdout:
            if '"event":"ready"' in line:
                break
            if time.monotonic() > deadline:
                fail("the destination never got ready")
        src = subprocess.Popen([pagewire, "src", "--vdev", f"net_memif0,role=client,socket={memif}",
                                "--file-prefix", f"pw-ctl-src-{os.getpid()}", "--control-socket", src_control,
                                "--max-gbps", "0.4", "--policy", "raw", "--profile", "random"] + common,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        control = Control(src_control)
        status = control.ask({"command": "query"})
        if not status.get("ok") or status["status"]["role"] != "src" or abs(status["status"]["max_gbps"] - 0.4) > 1e-6:
            fail(f"query: {status}")
        capped = wire_gbps(control, 1.0)
        if capped > 0.4 * 1.5:
            fail(f"capped at 0.4 Gbit/s, the wire carried {capped:.2f}")
        answer = control.ask({"command": "set", "max_gbps": 4})
        if not answer.get("ok") or abs(answer["status"]["max_gbps"] - 4) > 1e-6:
            fail(f"set max_gbps: {answer}")
        raised = wire_gbps(control, 1.0)
        if raised < max(2 * 0.4, 2 * capped):
            fail(f"the cap went from 0.4 to 4 Gbit/s and the wire carried {raised:.2f} (was {capped:.2f})")
        print(f"wire: {capped:.2f} Gbit/s capped at 0.4, {raised:.2f} once raised to 4")
        if not control.ask({"command": "set", "max_gbps": 0.4}).get("ok"):  # time for the rest
            fail("set max_gbps back to 0.4 refused")
        for bad, field in [({"command": "set", "max_gbps": -1}, "max_gbps"),
                           ({"command": "set", "downtime_limit_ms": 0}, "downtime_limit_ms"),
                           ({"command": "set", "speed": 1}, "speed"),
                           ({"command": "reboot"}, "reboot")]:
            answer = control.ask(bad)
            if answer.get("ok") or field not in answer.get("error", ""):
                fail(f"{bad} was not refused by name: {answer}")
        if not control.ask({"command": "set", "downtime_limit_ms": 50}).get("ok"):
            fail("set downtime_limit_ms refused")
        dst_status = Control(dst_control).ask({"command": "query"})
        if not dst_status.get("ok") or dst_status["status"]["frames_received"] == 0:
            fail(f"destination query: {dst_status}")
        cancelled_at = time.monotonic()
        if not control.ask({"command": "cancel", "reason": "operator asked"}).get("ok"):
            fail("cancel refused")
        src_out, src_err = src.communicate(timeout=30)
        dst_out, dst_err = dst.communicate(timeout=30)
        took = time.monotonic() - cancelled_at
        if src.returncode != 1 or "operator asked" not in src_out or "keeps running on the source" not in src_out:
            fail(f"source after cancel: exit {src.returncode}, {src_out[-500:]} {src_err[-500:]}")
        if dst.returncode != 1 or '"outcome":"failed"' not in dst_out:
            fail(f"destination after cancel: exit {dst.returncode}, {dst_out[-500:]} {dst_err[-500:]}")
        if took > 3:
            fail(f"both ends took {took:.1f} s to end after cancel")
        if os.path.exists(src_control) or os.path.exists(dst_control):
            fail("a control socket file was left behind")
        print(f"cancel: both ends ended in {took:.2f} s")
        print("OK")
    finally:
        for process in ("src", "dst"):
            p = locals().get(process)
            if p is not None and p.poll() is None:
                p.kill()


if __name__ == "__main__":
    main()
