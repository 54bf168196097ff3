#!/usr/bin/env bash
# The switchover of a RAW-policy live migration over memif (MTU 1500, so every page is split
# over frames) sends the paused guest's pages from its memory by reference, and the
# destination still holds exactly the source's memory.
set -u
pw=$1
fail() { echo "FAIL: $*"; exit 1; }

out=$("$pw" demo --size-mib 64 --json -- --policy raw 2>&1) || fail "demo --policy raw: $(echo "$out" | tail -3)"
echo "$out" | grep -q '"zero_copy":"on"' || fail "zero-copy was not on: $(echo "$out" | grep -o '"zero_copy":"[^"]*"')"
by_reference=$(echo "$out" | grep -o '"pages_by_reference":[0-9]*' | head -1 | cut -d: -f2)
[ "${by_reference:-0}" -gt 0 ] || fail "no page of the switchover went by reference"
[ "$(echo "$out" | grep -c '"verified":true')" -ge 1 ] || fail "the migration did not verify"
echo "zero-copy switchover: $by_reference pages by reference, verified"
