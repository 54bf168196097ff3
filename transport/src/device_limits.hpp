// What a device really carries, where DPDK 22.11's report is wrong or its defaults would do
// harm: memif and af_packet report Ethernet's 1518 bytes whatever their buffers hold, and
// af_packet's MTU setter rewrites the host interface's MTU. Internal to the port.
#pragma once

#include <rte_ethdev.h>

#include <cstdint>
#include <string>

namespace pagewire::transport::device_limits {

// The MTU ethdev lets the device be configured with: its max_mtu and its max_rx_pktlen.
std::uint16_t reported_mtu(const rte_eth_dev_info& info);
// The largest MTU the device carries (see device_limits.cpp for memif and af_packet).
std::uint16_t device_mtu(const rte_eth_dev_info& info);
// The data room a receive buffer needs, beyond the frame itself: af_packet copies a whole
// ring frame into each mbuf, whatever the MTU.
std::uint32_t receive_buffer_bytes(const rte_eth_dev_info& info);
// Setting the device's MTU would change something not ours (af_packet: the host interface).
bool leave_mtu_alone(const rte_eth_dev_info& info);
// memif's own zero-copy client: segments outside EAL memory must never reach it.
bool memif_zero_copy(const rte_eth_dev_info& info);
// A memif client (its default role): it connects to its server when started, and only then.
bool memif_client(const rte_eth_dev_info& info);

}  // namespace pagewire::transport::device_limits
