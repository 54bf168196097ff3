#!/usr/bin/env bash
# SIGINT before a session exists, between two network namespaces joined by a veth pair
# (DPDK af_packet on each end). Alone, a destination waiting for its HELLO and a source
# asking ARP for an absent peer end within a second, saying they were cancelled. A
# destination interrupted in the middle of the handshake (HELLO answered, the source's
# path-MTU search under way: the destination's side of the veth is narrowed to 1200 bytes
# after its port started, so every probe is lost) tells the source, which ends within a
# second with the reason instead of waiting out its peer timeout. Nothing reports success;
# the source says its guest runs on.
# The source interrupted mid-handshake is tested over net_ring (tests/vdev/
# handshake_cancel_test.cpp): here its ABORT cannot cross, since a veth that dropped an
# oversized frame refuses the sender's next ones (ENOBUFS, kernel 6.18).
set -u
pw=$1
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 for network namespaces"
  exit 77
fi
status=0
tag="pi$$"
tag=${tag:0:11}
ns_a="$tag-a" ns_b="$tag-b"
ip netns add "$ns_a" && ip netns add "$ns_b"
trap 'ip netns del "$ns_a" 2>/dev/null; ip netns del "$ns_b" 2>/dev/null' EXIT
ip link add "$tag-x" netns "$ns_a" type veth peer name "$tag-y" netns "$ns_b"
# No IPv6 chatter from the kernel: every frame the source's side carries is pagewire's.
ip netns exec "$ns_a" sysctl -qw "net.ipv6.conf.$tag-x.disable_ipv6=1"
ip netns exec "$ns_b" sysctl -qw "net.ipv6.conf.$tag-y.disable_ipv6=1"
ip -n "$ns_a" link set "$tag-x" up
ip -n "$ns_b" link set "$tag-y" up
dst_log=$(mktemp) src_log=$(mktemp)

start_dst() {
  ip netns exec "$ns_b" "$pw" dst --vdev "net_af_packet0,iface=$tag-y,framecnt=1024" --size-mib 64 \
    --timeout-s 60 --mtu 1500 >"$dst_log" 2>&1 &
  dst_pid=$!
  for _ in $(seq 600); do grep -q "dst: ready" "$dst_log" && return 0; sleep 0.05; done
  echo "FAIL: the destination never became ready"; status=1
}
start_src() {
  ip netns exec "$ns_a" "$pw" src --vdev "net_af_packet0,iface=$tag-x,framecnt=1024" --size-mib 64 \
    --timeout-s 60 --mtu 1500 >"$src_log" 2>&1 &
  src_pid=$!
}
now() { date +%s.%N; }
# Waits for `pid`; fails unless it exited 1 within `limit` seconds of `since` and its log
# says `expected`, and says no success.
expect_end() {
  local who=$1 pid=$2 log=$3 since=$4 limit=$5 expected=$6
  wait "$pid"
  local code=$? took
  took=$(echo "$(now) - $since" | bc)
  echo "== $who: exit $code, $took s after the interrupt"
  grep -v "^TELEMETRY" "$log" | sed "s/^/   /"
  if [ "$code" -ne 1 ] || ! grep -q "$expected" "$log" || grep -q "verified\|committed" "$log" ||
     [ "$(echo "$took > $limit" | bc)" = 1 ]; then
    echo "FAIL: $who must exit 1 within $limit s saying '$expected'"
    status=1
  fi
}
# Frames the source's side of the veth carried ("sent": ARP requests, before a peer answers)
# or dropped ("dropped": probes larger than the narrowed far side, once HELLO was answered).
source_frames() {
  ip -n "$ns_a" -s link show "$tag-x" | awk -v field="$([ "$1" = sent ] && echo 2 || echo 4)" \
    '/TX:/ {getline; print $field; exit}'
}

echo "## a destination waiting for its HELLO"
start_dst
kill -INT "$dst_pid"; at=$(now)
expect_end dst "$dst_pid" "$dst_log" "$at" 1 "cancelled: interrupted (SIGINT)"

echo "## a source asking ARP for a peer that is not there"
before=$(source_frames sent)
start_src
# Its ARP requests on the wire: EAL and the port are up, SIGINT is caught (a background job
# of a script starts with SIGINT ignored), the source waits for an answer.
for _ in $(seq 600); do [ "$(source_frames sent)" -gt "$before" ] && break; sleep 0.05; done
kill -INT "$src_pid"; at=$(now)
expect_end src "$src_pid" "$src_log" "$at" 1 "cancelled: interrupted (SIGINT); nothing was migrated"

echo "## dst interrupted in the middle of the handshake"
start_dst
ip -n "$ns_b" link set "$tag-y" mtu 1200
before=$(source_frames dropped)
start_src
for _ in $(seq 600); do [ "$(source_frames dropped)" -gt "$before" ] && break; sleep 0.05; done
if [ "$(source_frames dropped)" -le "$before" ]; then
  echo "FAIL: the source never reached its path-MTU search"; status=1
fi
kill -INT "$dst_pid"; at=$(now)
expect_end dst "$dst_pid" "$dst_log" "$at" 1 "cancelled: interrupted (SIGINT)"
expect_end src "$src_pid" "$src_log" "$at" 1 \
  "the destination aborted: the destination was cancelled: interrupted (SIGINT)"
rm -f "$dst_log" "$src_log"
exit $status
