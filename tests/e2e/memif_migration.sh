#!/usr/bin/env bash
# Two processes, two address spaces, one memif link: the destination (memif server) and the
# source (client) migrate a 32 MiB image in rounds; the destination verifies every byte.
set -u
peer=$1
streams=${2:-1}
id="pw-memif-$$"
socket="/tmp/$id.sock"
dst_log=$(mktemp)
trap 'rm -f "$socket" "$dst_log"; kill $dst_pid 2>/dev/null' EXIT
"$peer" dst "net_memif0,role=server,socket=$socket,bsize=10240" "$id-dst" 3 "$streams" >"$dst_log" 2>&1 &
dst_pid=$!
# memif's client connects in rte_eth_dev_start and is refused until the server's port has
# started with its queues configured: wait for the destination to say so.
for _ in $(seq 200); do grep -q "port started" "$dst_log" && break; sleep 0.05; done
"$peer" src "net_memif0,role=client,socket=$socket,bsize=10240" "$id-src" 3 "$streams"
src_status=$?
wait $dst_pid
dst_status=$?
grep -v "^EAL\|^TELEMETRY" "$dst_log"
echo "source exit $src_status, destination exit $dst_status"
[ $src_status -eq 0 ] && [ $dst_status -eq 0 ]
