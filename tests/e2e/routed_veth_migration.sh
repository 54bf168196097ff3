#!/usr/bin/env bash
# Real Linux hosts: three network namespaces joined by veth pairs,
#   source 10.1.0.1 ── (MTU 9000) ── router 10.1.0.254 | 10.2.0.254 ── (MTU 1400) ── (9000) destination 10.2.0.1
# The ends run DPDK net_af_packet on their veth, with ring frames that hold 9000-byte frames,
# and both advertise 9000: each end's own interface carries it. The source resolves its
# gateway by ARP; the router (the kernel, forwarding) resolves the destination by ARP; the
# router's 1400-byte side of the last link, like a tunnel's, is narrower than what both ends
# advertise, so only probing finds the path MTU. The ports leave the interfaces' MTUs as they
# are. The destination verifies every byte.
set -u
peer=$1
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
  echo "SKIP: needs root and iproute2 for network namespaces"
  exit 77
fi
tag="pw$$"
ns_src="$tag-src" ns_rt="$tag-rt" ns_dst="$tag-dst"
dst_log=$(mktemp) src_log=$(mktemp)
cleanup() {
  kill "$dst_pid" 2>/dev/null
  for ns in "$ns_src" "$ns_rt" "$ns_dst"; do ip netns del "$ns" 2>/dev/null; done
  rm -f "$dst_log" "$src_log"
}
trap cleanup EXIT
set -e
for ns in "$ns_src" "$ns_rt" "$ns_dst"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add "$tag-a" mtu 9000 netns "$ns_src" type veth peer name "$tag-b" mtu 9000 netns "$ns_rt"
ip link add "$tag-c" mtu 1400 netns "$ns_rt" type veth peer name "$tag-d" mtu 9000 netns "$ns_dst"
ip -n "$ns_rt" addr add 10.1.0.254/24 dev "$tag-b"
ip -n "$ns_rt" addr add 10.2.0.254/24 dev "$tag-c"
for link in "$ns_src $tag-a" "$ns_rt $tag-b" "$ns_rt $tag-c" "$ns_dst $tag-d"; do
  set -- $link
  ip -n "$1" link set "$2" up
done
ip netns exec "$ns_rt" sysctl -qw net.ipv4.ip_forward=1
set +e

ring="framecnt=1024,framesz=9216,blocksz=36864"
ip netns exec "$ns_dst" "$peer" dst "net_af_packet0,iface=$tag-d,$ring" "$tag-d" 2 1 \
  local=10.2.0.1 peer=10.1.0.1 arp=1 >"$dst_log" 2>&1 &
dst_pid=$!
for _ in $(seq 200); do grep -q "port started" "$dst_log" && break; sleep 0.05; done
ip netns exec "$ns_src" "$peer" src "net_af_packet0,iface=$tag-a,$ring" "$tag-s" 2 1 \
  local=10.1.0.1 peer=10.2.0.1 gateway=10.1.0.254 arp=1 >"$src_log" 2>&1
src_status=$?
wait "$dst_pid"
dst_status=$?
grep -v "^EAL\|^TELEMETRY" "$src_log" "$dst_log"
mtu=$(sed -n 's/.*path MTU \([0-9]*\).*/\1/p' "$src_log")
echo "source exit $src_status, destination exit $dst_status, path MTU ${mtu:-?}"
for link in "$ns_src $tag-a 9000" "$ns_dst $tag-d 9000"; do
  set -- $link
  ip -n "$1" link show "$2" | grep -q "mtu $3 " || { echo "FAIL: the port changed $2's MTU"; exit 1; }
done
[ "$src_status" -eq 0 ] && [ "$dst_status" -eq 0 ] && [ -n "$mtu" ] && [ "$mtu" -le 1400 ] && [ "$mtu" -gt 1392 ]
