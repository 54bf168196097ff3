#!/usr/bin/env bash
# `pagewire bench qemu` drives real QEMU: a small image migrated by QEMU (classic and 2 multifd
# channels, over QMP) and by pagewire src/dst, one pair; every run completes, the JSON has the
# figures and ratios, the CSV a row per run, and no RAM file or socket is left behind.
set -u
pw=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$pw" image create "$dir/guest.raw" --profile idle-vm --size-mib 32 >/dev/null || fail "image create"
"$pw" bench qemu "$dir/guest.raw" --pairs 1 --channels 1,2 --json --out "$dir/bq" >"$dir/out.json" 2>"$dir/err.txt" ||
  fail "bench qemu: $(tail -5 "$dir/err.txt")"
python3 - "$dir/out.json" <<'PY' || fail "bench qemu JSON: $(cat "$dir/out.json")"
import json, sys
result = json.load(open(sys.argv[1]))
assert result["event"] == "bench_qemu" and result["image_bytes"] == 32 << 20
names = [s["configuration"] for s in result["summaries"]]
assert names == ["qemu 1 channel", "qemu 2 multifd channels", "pagewire"], names
for s in result["summaries"]:
    assert s["runs"] == 1 and s["failures"] == 0, s
    assert s["total_seconds"]["median"] > 0 and s["downtime_ms"]["median"] > 0, s
    # Both send the non-zero pages (idle-vm: about 70 %), each in its own framing.
    assert 5 < s["wire_mib"]["median"] < 40, s
    if s["configuration"] != "pagewire":
        assert s["pagewire_ratio"]["total"] > 0, s
PY
[ "$(wc -l < "$dir/bq.csv")" -eq 4 ] || fail "expected a header and three rows in bq.csv"
! ls /dev/shm/pagewire-bench-qemu-* /tmp/pagewire-bench-qemu-* 2>/dev/null || fail "bench qemu left files behind"
echo "bench qemu: ok"
