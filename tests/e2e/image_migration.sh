#!/usr/bin/env bash
# Reference images as files: create one, inspect it, migrate it to a second process over
# memif. With a quiet guest the destination's output equals the file byte for byte; with a
# writing guest the file on disk stays exactly as it was (the source works on a private copy).
set -u
pw=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$pw" image create "$dir/guest.raw" --profile idle-vm --size-mib 32 --seed 7 || fail "image create"
"$pw" image stats "$dir/guest.raw" --json | grep -q '"zero_pages"' || fail "image stats"
before=$("$pw" image digest "$dir/guest.raw" | cut -d' ' -f1)
[ ${#before} -eq 32 ] || fail "image digest printed '$before'"

migrate() {  # migrate DIRTY_RATE OUTPUT
  local socket="$dir/memif.sock" dst_log="$dir/dst.log"
  "$pw" dst --vdev "net_memif0,role=server,socket=$socket" --size-mib 32 --output "$2" --timeout-s 30 \
    >"$dst_log" 2>&1 &
  local dst_pid=$!
  for _ in $(seq 200); do grep -q "dst: ready" "$dst_log" && break; sleep 0.05; done
  "$pw" src --vdev "net_memif0,role=client,socket=$socket" --image "$dir/guest.raw" --dirty-rate "$1" \
    --timeout-s 30 | grep -E "migrated|round" || fail "source with dirty rate $1"
  wait $dst_pid || fail "destination with dirty rate $1: $(cat "$dst_log")"
  rm -f "$socket"
}

migrate 0 "$dir/quiet.raw"
cmp -s "$dir/guest.raw" "$dir/quiet.raw" || fail "a quiet guest's migrated image differs from the file"
migrate 50000 "$dir/busy.raw"
after=$("$pw" image digest "$dir/guest.raw" | cut -d' ' -f1)
[ "$before" = "$after" ] || fail "the source image file changed: $before -> $after"
echo "image migration: byte-exact output, source file intact"
