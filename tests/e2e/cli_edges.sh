#!/usr/bin/env bash
# The CLI's edges as a new user meets them: a version, help for `bench`, an unknown
# benchmark named, an image never overwritten unless asked, negative numbers refused, a
# missing --image said so.
set -u
pw=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$pw" --version | grep -Eq '^pagewire [0-9]+\.[0-9]+\.[0-9]+ \(API [0-9]+, built from [0-9a-z.-]+\)$' || fail "--version: $("$pw" --version)"
"$pw" bench --help | grep -q "codec|transport|link|sweep" || fail "bench --help lists no benchmarks"
"$pw" bench nosuch > "$dir/out" 2>&1
[[ $? == 2 ]] && grep -q "unknown benchmark 'nosuch'" "$dir/out" || fail "bench nosuch: $(cat "$dir/out")"

"$pw" image create "$dir/a.img" --size-mib 1 > /dev/null || fail "image create"
digest=$("$pw" image digest "$dir/a.img")
"$pw" image create "$dir/a.img" --size-mib 2 --seed 9 > "$dir/out" 2>&1 && fail "an existing image was overwritten"
grep -q "exists; --force replaces it" "$dir/out" || fail "no advice: $(cat "$dir/out")"
[[ $("$pw" image digest "$dir/a.img") == "$digest" ]] || fail "the refused create changed the file"
"$pw" image create "$dir/a.img" --size-mib 2 --force > /dev/null || fail "--force did not replace it"
[[ $(stat -c %s "$dir/a.img") == $((2 << 20)) ]] || fail "--force wrote the wrong size"

# A negative size or count is refused, naming the option (Boost would wrap it to 2^64 - 5).
for form in "--size-mib=-5" "--seed=-1"; do
  "$pw" image create "$dir/n.img" $form > "$dir/out" 2>&1
  [[ $? == 2 ]] && grep -q -- "${form%%=*} ${form#*=}: expected a whole number of 0 or more" "$dir/out" ||
    fail "$form: $(cat "$dir/out")"
done
[[ -e $dir/n.img ]] && fail "a refused create wrote its file"

"$pw" dst --vdev net_null0 --interval-ms 5 > "$dir/out" 2>&1 && fail "dst took --interval-ms 5"
grep -q -- "--interval-ms 5: expected at least 10" "$dir/out" || fail "--interval-ms 5: $(tail -2 "$dir/out")"
"$pw" bench link --vdev net_null0 > "$dir/out" 2>&1
[[ $? == 2 ]] && grep -q -- "--server or --client: expected exactly one" "$dir/out" || fail "bench link: $(cat "$dir/out")"

"$pw" outcome --vdev net_null0 > "$dir/out" 2>&1
[[ $? == 2 ]] && grep -q -- "'--session' is required" "$dir/out" || fail "outcome without --session: $(cat "$dir/out")"
"$pw" outcome --vdev net_null0 --peer-mac 02:00:00:00:00:02 --session 42 --wait-s 1 > "$dir/out" 2>&1
[[ $? == 3 ]] && grep -q "session 42: unknown: no answer" "$dir/out" || fail "outcome, nobody there: $(cat "$dir/out")"

"$pw" src --vdev net_null0 --image "$dir/missing.img" > "$dir/out" 2>&1 && fail "src ran without its image"
grep -q "missing.img: cannot read it: No such file" "$dir/out" || fail "missing --image: $(cat "$dir/out")"
# What follows `--` goes to DPDK's EAL as it is: an option EAL does not know fails its init.
"$pw" dst --vdev net_null0 --timeout-s 1 -- --no-such-eal-option > "$dir/out" 2>&1 && fail "dst ignored its EAL options"
grep -q "rte_eal_init failed" "$dir/out" || fail "EAL options not passed through: $(tail -3 "$dir/out")"

# A migration leaves nothing of DPDK's behind: each end removes its runtime directory.
if [[ -d /var/run/dpdk && -w /var/run/dpdk ]]; then
  ls /var/run/dpdk | sort > "$dir/before"
  "$pw" demo --size-mib 16 > "$dir/demo.log" 2>&1 || fail "demo: $(tail -5 "$dir/demo.log")"
  ls /var/run/dpdk | sort > "$dir/after"
  left=$(comm -13 "$dir/before" "$dir/after")
  [[ -z $left ]] || fail "left under /var/run/dpdk: $left"
fi
echo OK
