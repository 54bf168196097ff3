#!/usr/bin/env bash
# Postcopy between two processes over memif, the guest writing at both ends: at once (every
# page missing when the guest starts on the destination) and after one pre-copy round. Each
# verifies (the destination received exactly the source's paused image), and both ends'
# JSON says what moved after the switch: the missing pages, the remote faults and their
# waits. A bad --postcopy is refused naming the option.
set -u
pw=$1
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# After a round: a downtime limit no round meets, so pre-copy does not converge first.
for mode in now after-rounds; do
  "$pw" demo --size-mib 64 --dirty-rate 20000 --json -- --postcopy "$mode" --downtime-ms 1 > "$dir/$mode.log" 2>&1 \
    || fail "demo --postcopy $mode: $(tail -5 "$dir/$mode.log")"
  python3 - "$dir/$mode.log" "$mode" <<'PY' || fail "postcopy $mode: $(grep -E '"(migrated|received|demo)"' "$dir/$mode.log")"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
mode = sys.argv[2]
demo = next(e for e in events if e.get("event") == "demo")
assert demo["verified"], demo
migrated = next(e for e in events if e.get("event") == "migrated")
received = next(e for e in events if e.get("event") == "received")
src, dst = migrated["postcopy"], received["postcopy"]
assert src is not None and dst is not None, (src, dst)
guest_pages = 64 * 256
assert src["missing_pages"] == dst["missing_pages"], (src, dst)
if mode == "now":
    assert src["missing_pages"] == guest_pages, src
else:
    assert 0 < src["missing_pages"] < guest_pages, src
assert dst["pages_ms"] > 0 and dst["switch_ms"] > 0, dst
assert dst["remote_faults"] > 0, ("the destination's guest touched missing pages", dst)
assert dst["fault_us"]["median"] > 0 and dst["fault_us"]["max"] >= dst["fault_us"]["median"], dst
assert dst["guest_writes"] > 0, dst
print(f"postcopy {mode}: {src['missing_pages']} pages missing, {dst['remote_faults']} remote faults, "
      f"median wait {dst['fault_us']['median']:.0f} us, paused {migrated['downtime_ms']:.1f} ms")
PY
done

"$pw" src --vdev net_null0 --postcopy sometimes > "$dir/bad.log" 2>&1
[ $? -eq 1 ] || fail "a bad --postcopy: exit $?"
grep -q -- "--postcopy sometimes: expected off, now, when-stuck or after-rounds" "$dir/bad.log" \
  || fail "a bad --postcopy: $(cat "$dir/bad.log")"
echo "postcopy verified at once and after a round; a bad mode refused"
