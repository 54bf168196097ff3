#!/usr/bin/env bash
# DPDK telemetry while a migration runs: the source's /pagewire/stats, read over EAL's
# telemetry socket as dpdk-telemetry.py would, shows frames going out, and the migration
# still completes and verifies. The source is paced so that there is time to look.
set -u
pw=$1
dir=$(mktemp -d)
prefix=pw-telemetry-$$
sock=$dir/memif.sock
trap 'kill $dst $src 2>/dev/null; rm -rf "$dir" /var/run/dpdk/$prefix-src /var/run/dpdk/$prefix-dst' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$pw" dst --vdev "net_memif0,role=server,socket=$sock" --size-mib 128 --file-prefix "$prefix-dst" \
  > "$dir/dst.log" 2>&1 &
dst=$!
for _ in $(seq 100); do grep -q "ready" "$dir/dst.log" && break; sleep 0.1; done
"$pw" src --vdev "net_memif0,role=client,socket=$sock" --size-mib 128 --file-prefix "$prefix-src" \
  --policy raw --profile random --max-gbps 0.4 --dirty-rate 0 > "$dir/src.log" 2>&1 &
src=$!

python3 - "/var/run/dpdk/$prefix-src/dpdk_telemetry.v2" > "$dir/telemetry.json" <<'PY' || fail "no telemetry: $(cat "$dir/telemetry.json")"
import json, socket, sys, time
path = sys.argv[1]
deadline = time.time() + 30
while time.time() < deadline:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        s.recv(4096)  # the greeting
        s.send(b"/pagewire/stats")
        reply = json.loads(s.recv(65536))
        s.close()
        stats = reply.get("/pagewire/stats")
        if isinstance(stats, dict) and stats.get("frames_sent", 0) > 0:
            print(json.dumps(stats))
            sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.1)
print("no /pagewire/stats with frames_sent > 0 within 30 s")
sys.exit(1)
PY
grep -q '"role": "source"' "$dir/telemetry.json" || fail "stats: $(cat "$dir/telemetry.json")"
grep -q '"path_mtu"' "$dir/telemetry.json" || fail "no path MTU in the stats"
# Every counter reaches telemetry (DPDK refuses names that are not letters, digits and _).
python3 - "$dir/telemetry.json" <<'PY' || fail "counters missing from telemetry"
import json, sys
stats = json.load(open(sys.argv[1]))
drops = ["not_ipv4", "not_for_us", "bad_ip_header", "not_udp", "wrong_port", "bad_checksum", "truncated",
         "bad_magic", "bad_version", "wrong_session", "unknown_type", "multi_segment", "seal_mismatch", "bad_tag",
         "replayed", "no_mbuf", "refused_hello", "query_limited", "out_of_turn", "wrong_direction"]
wanted = ["frames_sent", "frames_received", "retransmits_sack", "retransmits_timeout", "srtt_us", "path_mtu",
          "pages_raw", "pages_zero", "pages_copy"] + ["drop_" + d for d in drops]
missing = [name for name in wanted if name not in stats]
if missing:
    print("missing:", missing, "of", sorted(stats))
    sys.exit(1)
PY
wait $src || fail "source failed: $(tail -3 "$dir/src.log")"
wait $dst || fail "destination failed: $(tail -3 "$dir/dst.log")"
grep -q "migrated and verified" "$dir/src.log" || fail "no verified migration"
echo "telemetry: $(cat "$dir/telemetry.json" | cut -c1-200)"
