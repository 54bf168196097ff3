#!/usr/bin/env bash
# Checksum offload through a real driver: two pagewire processes on DPDK net_tap ports whose
# kernel interfaces share a Linux bridge. The tap PMD offers IPv4/UDP checksum offload (it
# computes TX sums and checks RX sums itself, as a NIC would), so both ends enable it and
# leave the sums to the port; the kernel bridge in between forwards real Ethernet frames.
# Both ends are on VLAN 100: the bridge carries tagged frames, ARP included. The migration
# must verify byte for byte, and both ends must report the offload in use. The destination
# receives into 1024-byte buffers, so the tap PMD scatters every full frame over a chain
# (RX scatter, as a NIC with small buffers would). (802.1Q through
# a kernel router's VLAN interface would be the next test; this kernel has no 8021q.)
#
# With a second argument of 2, both ends run two streams. A tap device spreads frames over
# its queues by the kernel's hash, so each stream's frames need a flow rule to reach their
# queue: the migration verifies where the kernel takes the rules (TC flower), and where it
# does not, both ends must refuse at once and say so.
set -u
pw=$1
streams=${2:-1}
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || [ ! -c /dev/net/tun ]; then
  echo "SKIP: needs root, iproute2 and /dev/net/tun"
  exit 77
fi
tag="pwt$$"
bridge="${tag}b" dst_if="${tag}d" src_if="${tag}s"
dir=$(mktemp -d)
cleanup() {
  kill "$dst_pid" "$src_pid" 2>/dev/null
  wait 2>/dev/null
  ip link del "$bridge" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- dst"; cat "$dir/dst.log"
  echo "--- src"; cat "$dir/src.log"
  echo "--- the bridge's forwarding table, 1 s after the source started"; cat "$dir/fdb" 2>/dev/null
  exit 1
}
ip link add "$bridge" type bridge || { echo "SKIP: no bridge support"; exit 77; }
ip link set "$bridge" mtu 9000 up

# The DPDK ports' own addresses, and their kernel interfaces' (the PMD gives an interface its
# port's address, and a bridge takes frames to or from a port's own address for itself).
dst_port_mac=02:00:5e:00:01:01 dst_kernel_mac=02:00:5e:00:00:01
src_port_mac=02:00:5e:00:01:02 src_kernel_mac=02:00:5e:00:00:02

# Attaches a tap interface to the bridge, with an address of its own, once its process has
# started the port. The PMD gives the interface the port's address when it makes it and
# again when the port starts: changed before that, the interface would be enslaved with the
# port's address, and the bridge would keep every frame sent to the port for itself.
# No IPv6 chatter on the test's wire.
attach() {  # attach IFACE LOG KERNEL_MAC
  for _ in $(seq 400); do grep -q '"event":"port"' "$2" && break; sleep 0.05; done
  sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1" 2>/dev/null
  ip link set "$1" address "$3" mtu 9000 master "$bridge" up && return
  # An end that refused its streams has gone, and its interface with it.
  ((streams > 1)) && grep -q "needs flow rules" "$dir"/*.log && return
  fail "cannot attach $1"
}

"$pw" dst --vdev "net_tap0,iface=$dst_if,mac=$dst_port_mac" --size-mib 32 --json --timeout-s 30 --file-prefix "$tag-dst" --vlan 100 \
  --rx-buffer-bytes 1024 --streams "$streams" > "$dir/dst.log" 2>&1 &
dst_pid=$!
attach "$dst_if" "$dir/dst.log" "$dst_kernel_mac"
for _ in $(seq 200); do grep -q '"event":"ready"' "$dir/dst.log" && break; sleep 0.05; done
"$pw" src --vdev "net_tap0,iface=$src_if,mac=$src_port_mac" --size-mib 32 --json --timeout-s 30 --file-prefix "$tag-src" --vlan 100 \
  --dirty-rate 5000 --streams "$streams" > "$dir/src.log" 2>&1 &
src_pid=$!
attach "$src_if" "$dir/src.log" "$src_kernel_mac"
# For a failure's report: the ports are gone with their processes by then.
(sleep 1; bridge fdb show br "$bridge" > "$dir/fdb" 2>&1) &
wait "$src_pid"
src_status=$?
wait "$dst_pid"
dst_status=$?
if ((streams > 1 && src_status != 0 && dst_status != 0)) &&
  grep -q "needs flow rules" "$dir/src.log" && grep -q "needs flow rules" "$dir/dst.log"; then
  echo "both ends refused $streams streams at once: this kernel takes no flow rules on a tap device"
  grep -o 'cannot steer[^"]*' "$dir/dst.log" | head -1
  exit 0
fi
((src_status == 0)) || fail "the source failed"
((dst_status == 0)) || fail "the destination failed"
grep -q '"verified":true' "$dir/src.log" || fail "not verified"
grep -q '"checksum_offload":{"rx":true,"tx":true}' "$dir/src.log" || fail "the source did not use checksum offload"
grep -q '"checksum_offload":{"rx":true,"tx":true}' "$dir/dst.log" || fail "the destination did not use checksum offload"
grep -q '"rx_scatter":true' "$dir/dst.log" || fail "the destination did not scatter received frames"
echo "migrated over net_tap and a kernel bridge, on VLAN 100, with checksum offload and RX scatter; verified"
