#!/usr/bin/env bash
# kill -9 either end in the middle of a migration between two network namespaces joined by
# a veth pair (DPDK af_packet on each end: a host dying looks like frames stopping). The
# survivor must fail once its resume window (2 s here; a dead peer looks like a dark path)
# has passed, say why, and never report success: a source says its guest keeps running; a
# destination discards its partial image.
# (Over memif, a peer's death is handled inside the memif PMD, which in DPDK 22.11 unmaps
# the shared rings under a running data path: see docs/design.md.)
set -u
pw=$1
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 for network namespaces"
  exit 77
fi
status=0
run_case() {
  local victim=$1 tag="pk$$$1"
  tag=${tag:0:11}
  local ns_a="$tag-a" ns_b="$tag-b" dst_log src_log
  dst_log=$(mktemp) src_log=$(mktemp)
  ip netns add "$ns_a" && ip netns add "$ns_b"
  ip link add "$tag-x" netns "$ns_a" type veth peer name "$tag-y" netns "$ns_b"
  ip -n "$ns_a" link set "$tag-x" up
  ip -n "$ns_b" link set "$tag-y" up
  ip netns exec "$ns_b" "$pw" dst --vdev "net_af_packet0,iface=$tag-y,framecnt=1024" --size-mib 256 \
    --timeout-s 30 --mtu 1500 --resume-window-s 2 >"$dst_log" 2>&1 &
  local dst_pid=$!
  for _ in $(seq 200); do grep -q "dst: ready" "$dst_log" && break; sleep 0.05; done
  ip netns exec "$ns_a" "$pw" src --vdev "net_af_packet0,iface=$tag-x,framecnt=1024" --size-mib 256 \
    --dirty-rate 50000 --timeout-s 30 --mtu 1500 --max-gbps 0.5 --resume-window-s 2 >"$src_log" 2>&1 &
  local src_pid=$!
  # Connected, then half a second into round 0, which the rate cap stretches to seconds (a
  # migration uncapped here ends in a quarter of a second, before any kill).
  for _ in $(seq 400); do grep -q "lcores of their own" "$src_log" && break; sleep 0.05; done
  sleep 0.5
  local survivor_pid survivor_log expected
  if [ "$victim" = dst ]; then
    kill -9 $dst_pid; survivor_pid=$src_pid; survivor_log=$src_log; expected="keeps running on the source"
  else
    kill -9 $src_pid; survivor_pid=$dst_pid; survivor_log=$dst_log; expected="discarded"
  fi
  local started=$SECONDS
  wait $survivor_pid
  local survivor_status=$?
  wait 2>/dev/null
  echo "== killed $victim; survivor exit $survivor_status after $((SECONDS - started)) s"
  grep -v "^EAL\|^TELEMETRY" "$survivor_log"
  if [ $survivor_status -eq 0 ] || [ $survivor_status -gt 128 ] || ! grep -q "$expected" "$survivor_log" ||
     grep -q "verified\|committed" "$survivor_log"; then
    echo "FAIL: the survivor must fail cleanly and say '$expected'"
    status=1
  fi
  ip netns del "$ns_a"; ip netns del "$ns_b"
  rm -f "$dst_log" "$src_log"
}
run_case dst
run_case src
exit $status
