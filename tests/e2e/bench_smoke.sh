#!/usr/bin/env bash
# The benchmark harness keeps working: a tiny sweep (two points, one run each) writes its CSV
# and JSON, the plot step draws from that JSON, a sweep with a parameter nothing takes is
# refused before it runs, a policy sweep of small migrations verifies
# every run, the two-process memif transport bench verifies its destination (with pages sent
# by reference too, and with a stream core per end), write tracking measures a live
# workload, the source-core bench sends every page by reference (on two cores
# too, where there are two), and the cost
# model prints its tables. Figures are not checked here: they live
# in docs/benchmarks.md.
set -u
pw=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$pw" bench sweep --kind transport --param region-mib=8 --param mtu=1500,9000 --param repeats=1 \
  --param loss=0 --repeats 1 --out "$dir/transport" || fail "bench sweep --kind transport"
[ "$(wc -l < "$dir/transport.csv")" -eq 3 ] || fail "expected a header and two rows in transport.csv"
grep -q '"tcp_gbps"' "$dir/transport.json" || fail "no kernel-TCP baseline in transport.json"
"$pw" bench plot --input "$dir/transport.json" --x mtu --y vs_tcp --output "$dir/chart.svg" || fail "bench plot"
grep -q '</svg>' "$dir/chart.svg" || fail "chart.svg is not an SVG document"

# A parameter no command takes fails the sweep before any point runs, naming it.
"$pw" bench sweep --kind migrate --param size-mib=16 --param nosuch=1,2 --repeats 1 --out "$dir/doomed" \
  > "$dir/doomed.out" 2>&1
[[ $? == 2 ]] && grep -q "does not take .*--param nosuch=1" "$dir/doomed.out" || fail "unknown --param: $(cat "$dir/doomed.out")"
grep -q "run 1/1" "$dir/doomed.out" && fail "a doomed point ran"
[[ -e $dir/doomed.csv ]] && fail "a refused sweep wrote its CSV"

"$pw" bench sweep --kind migrate --param size-mib=16 --param policy=raw,full --repeats 1 \
  --out "$dir/migrate" || fail "bench sweep --kind migrate"
grep -q '"verified": 1.0' "$dir/migrate.json" || fail "no verified migration in migrate.json"

"$pw" bench transport --link memif --region-mib 8 --repeats 2 --zero-copy --json > "$dir/memif.txt" 2>&1 ||
  fail "bench transport --link memif: $(tail -3 "$dir/memif.txt")"
grep -q '"verified":true' "$dir/memif.txt" || fail "the memif destination did not verify"
grep -q '"pages_by_reference":4096' "$dir/memif.txt" || fail "memif: not every stable-round page went by reference"

# Two stream cores per side (four lcores on however many CPUs), through 1 % loss; the bench
# fails unless the destination region equals the source.
"$pw" bench transport --stream-cores --streams 2 --region-mib 8 --repeats 1 --loss 0.01 --json > "$dir/cores.txt" 2>&1 ||
  fail "bench transport --stream-cores: $(tail -3 "$dir/cores.txt")"
grep -q '"source_lcores":\[[0-9]*,[0-9]*\]' "$dir/cores.txt" && grep -q '"destination_lcores":\[[0-9]*,[0-9]*\]' "$dir/cores.txt" ||
  fail "--stream-cores: not two stream lcores per side: $(tail -1 "$dir/cores.txt")"
grep -q '"n_streams_vs_one":[0-9]*\.[0-9]' "$dir/cores.txt" || fail "--stream-cores --streams 2: no 2 ÷ 1 ratio"

# memif with a stream core per end (crosswise on the plan's CPUs): the destination verifies.
"$pw" bench transport --link memif --stream-cores --region-mib 8 --repeats 1 --json > "$dir/memif_cores.txt" 2>&1 ||
  fail "bench transport --link memif --stream-cores: $(tail -3 "$dir/memif_cores.txt")"
grep -q '"stream_cores":true' "$dir/memif_cores.txt" && grep -q '"verified":true' "$dir/memif_cores.txt" ||
  fail "memif --stream-cores: $(tail -1 "$dir/memif_cores.txt")"

# Write tracking of a live workload: every field, the looks found what was written.
"$pw" bench track --size-mib 64 --repeats 1 --run-ms 300 --json > "$dir/track.txt" 2>&1 ||
  fail "bench track: $(tail -3 "$dir/track.txt")"
grep -q '"tracked_writes_per_second"' "$dir/track.txt" || fail "bench track: no result: $(tail -1 "$dir/track.txt")"

"$pw" bench transport --link null --region-mib 8 --repeats 1 --mtu 1500 --json > "$dir/null.txt" 2>&1 ||
  fail "bench transport --link null: $(tail -3 "$dir/null.txt")"
grep -q '"pages_by_reference":2048' "$dir/null.txt" || fail "--link null: not every page went by reference"
if [ "$(nproc)" -ge 2 ]; then  # a stream on each of two cores, beside one
  "$pw" bench transport --link null --region-mib 8 --repeats 1 --streams 2 --json > "$dir/null2.txt" 2>&1 ||
    fail "bench transport --link null --streams 2: $(tail -3 "$dir/null2.txt")"
  grep -q '"cores":2' "$dir/null2.txt" && grep -q '"pages_by_reference":2048' "$dir/null2.txt" &&
    ! grep -Eq '"copy_speedup":0(\.0*)?[,}]' "$dir/null2.txt" || fail "--link null --streams 2: no two-core rounds"
fi

"$pw" bench cost --sample-mib 8 --repeats 1 --profile database --policy raw --policy full > "$dir/cost.txt" ||
  fail "bench cost"
grep -q "database  full" "$dir/cost.txt" || fail "bench cost printed no row for database/full"
grep -q "^encrypted" "$dir/cost.txt" || fail "bench cost printed no sealing cost"
echo "bench smoke: ok"
