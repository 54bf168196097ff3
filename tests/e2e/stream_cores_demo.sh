#!/usr/bin/env bash
# Two processes over memif, each stream on an lcore of its own at both ends (oversubscribed
# on a small machine: correctness, not speed). The migration verifies, and each end's JSON
# says which lcore and CPU ran which stream. Then the source starts before the destination
# listens: it waits for it instead of failing.
set -u
pw=$1
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$pw" demo --size-mib 64 --streams 2 --json > "$dir/demo.log" 2>&1 || fail "demo --streams 2: $(tail -5 "$dir/demo.log")"
grep -Eq '"event":"demo".*"verified":true' "$dir/demo.log" || fail "demo not verified: $(tail -5 "$dir/demo.log")"
python3 - "$dir/demo.log" <<'PY' || fail "stream cores: $(grep -E '"(migrated|received)"' "$dir/demo.log")"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
for name in ("migrated", "received"):
    event = next(e for e in events if e.get("event") == name)
    cores = event["stream_cores"]
    assert event["streams"] == 2 and len(cores) == 2, (name, event)
    assert [c["stream"] for c in cores] == [0, 1], cores
    assert len({c["lcore"] for c in cores}) == 2, ("each stream an lcore of its own", cores)
    ports = [e for e in events if e.get("event") == "port"]
    assert all(len(p["stream_cpus"]) == 2 for p in ports), ports
PY

sock=$dir/late.sock
"$pw" src --vdev "net_memif0,role=client,socket=$sock" --size-mib 16 --timeout-s 30 --json \
  --file-prefix "pw-late-src-$$" > "$dir/src.log" 2>&1 &
src=$!
sleep 1.5
"$pw" dst --vdev "net_memif0,role=server,socket=$sock" --size-mib 16 --timeout-s 30 --json \
  --file-prefix "pw-late-dst-$$" > "$dir/dst.log" 2>&1 || fail "late destination: $(tail -3 "$dir/dst.log")"
wait $src || fail "a source started before its destination: $(grep -v memif_connect_client "$dir/src.log" | tail -3)"
grep -Eq '"event":"migrated".*"verified":true' "$dir/src.log" || fail "late destination: not verified"
echo "2 stream cores per side verified; a source started first waited for its destination"
