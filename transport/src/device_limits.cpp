#include "device_limits.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_devargs.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <string_view>

#include <unistd.h>

#include "pagewire/transport/port.hpp"

namespace pagewire::transport {

namespace {

// A vdev string's devarg (`bsize` in "net_memif0,role=client,bsize=9216"); "" when absent.
std::string devarg_of(const std::string& arguments, const std::string& key) {
  const std::string padded = "," + arguments + ",";
  const std::size_t at = padded.find("," + key + "=");
  if (at == std::string::npos) return "";
  const std::size_t start = at + key.size() + 2;
  return padded.substr(start, padded.find(',', start) - start);
}

std::string devarg(const rte_device* device, const std::string& key) {
  const rte_devargs* devargs = device != nullptr ? rte_dev_devargs(device) : nullptr;
  if (devargs == nullptr || devargs->args == nullptr) return "";
  return devarg_of(devargs->args, key);
}

std::uint32_t devarg_number(const rte_device* device, const std::string& key, std::uint32_t otherwise) {
  const std::string value = devarg(device, key);
  return value.empty() ? otherwise : static_cast<std::uint32_t>(std::strtoul(value.c_str(), nullptr, 0));
}

bool driver_is(const rte_eth_dev_info& info, std::string_view name) {
  return info.driver_name != nullptr && std::string_view(info.driver_name) == name;
}

// What one af_packet ring frame holds for the packet: its size (`framesz`, 2048 by default)
// less the kernel's tpacket2 header as DPDK accounts for it (TPACKET2_HDRLEN less the
// sockaddr_ll that follows it: 32 bytes).
constexpr std::uint32_t kAfPacketDefaultFrame = 2048;
constexpr std::uint32_t kAfPacketFrameHeader = 32;
std::uint32_t af_packet_frame_data(const rte_device* device) {
  const std::uint32_t frame = devarg_number(device, "framesz", kAfPacketDefaultFrame);
  return frame > kAfPacketFrameHeader ? frame - kAfPacketFrameHeader : 0;
}

// The host interface's MTU as the administrator set it; 0 when it cannot be read.
std::uint32_t interface_mtu(const std::string& interface) {
  if (interface.empty() || interface.find('/') != std::string::npos) return 0;
  std::ifstream file("/sys/class/net/" + interface + "/mtu");
  std::uint32_t mtu = 0;
  return file >> mtu ? mtu : 0;
}

std::uint16_t mtu_for_frame_bytes(std::uint32_t frame_bytes) {
  const std::uint32_t overhead = RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN;
  return static_cast<std::uint16_t>(std::clamp<std::uint32_t>(frame_bytes, overhead, UINT16_MAX) - overhead);
}

// memif buffers that hold a 9000-byte frame, tagged, whole.
constexpr std::uint32_t kJumboMemifBuffer = 9216;

}  // namespace

namespace device_limits {

std::uint16_t reported_mtu(const rte_eth_dev_info& info) {
  const auto frame_limit = static_cast<std::uint16_t>(
      std::min<std::uint32_t>(info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN, UINT16_MAX));
  return std::min<std::uint16_t>(info.max_mtu, frame_limit);
}

// memif's rings carry a frame of any length, as one descriptor of `bsize` bytes (2048 by
// default) or a chain of them. Chains are not used: DPDK 22.11's copying transmit path leaves
// a stale "next" flag on a ring slot that later holds a whole frame, so after the ring wraps
// the receiver glues two frames together (fixed upstream in 2026, DPDK commit f7a52200d4,
// after Debian 12's 22.11.11). So a memif port's MTU is what fits in one descriptor.
//
// af_packet carries what one ring frame holds, and never more than its interface's MTU: the
// port leaves that MTU as it is (leave_mtu_alone) instead of rewriting it.
//
// The session's path-MTU probe confirms either before any data goes.
std::uint16_t device_mtu(const rte_eth_dev_info& info) {
  if (driver_is(info, "net_memif")) return mtu_for_frame_bytes(devarg_number(info.device, "bsize", 2048));
  if (driver_is(info, "net_af_packet")) {
    const std::uint16_t framed = mtu_for_frame_bytes(af_packet_frame_data(info.device));
    const std::uint32_t interface = interface_mtu(devarg(info.device, "iface"));
    return interface == 0 ? framed : static_cast<std::uint16_t>(std::min<std::uint32_t>(framed, interface));
  }
  return reported_mtu(info);
}

std::uint32_t receive_buffer_bytes(const rte_eth_dev_info& info) {
  if (driver_is(info, "net_af_packet")) return af_packet_frame_data(info.device);
  return info.min_rx_bufsize;
}

bool leave_mtu_alone(const rte_eth_dev_info& info) { return driver_is(info, "net_af_packet"); }

bool memif_zero_copy(const rte_eth_dev_info& info) {
  return driver_is(info, "net_memif") && devarg(info.device, "zero-copy") == "yes";
}

bool memif_client(const rte_eth_dev_info& info) {
  const std::string role = devarg(info.device, "role");
  return driver_is(info, "net_memif") && role != "server" && role != "master";
}

}  // namespace device_limits

std::string sized_for_jumbo_frames(const std::string& vdev) {
  const std::size_t comma = vdev.find(',');
  const std::string arguments = comma == std::string::npos ? "" : vdev.substr(comma + 1);
  if (vdev.rfind("net_memif", 0) == 0 && devarg_of(arguments, "bsize").empty()) {
    return vdev + ",bsize=" + std::to_string(kJumboMemifBuffer);
  }
  if (vdev.rfind("net_af_packet", 0) == 0 && devarg_of(arguments, "framesz").empty()) {
    const std::uint32_t mtu = interface_mtu(devarg_of(arguments, "iface"));
    // A frame of the interface's MTU, tagged, after the tpacket header. DPDK finds frame i at
    // i * framesz, so a block (whole pages, as the kernel wants) must hold whole frames: in
    // 1 KiB steps, a few frames make a block (9216-byte frames: four to a 36 KiB block).
    const std::uint32_t frame = (mtu + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN + kAfPacketFrameHeader + 1023) / 1024 * 1024;
    if (mtu == 0 || frame <= kAfPacketDefaultFrame) return vdev;
    const auto page = static_cast<std::uint32_t>(sysconf(_SC_PAGESIZE));
    const std::uint32_t block = frame * (page / std::gcd(frame, page));
    return vdev + ",framesz=" + std::to_string(frame) + ",blocksz=" + std::to_string(block);
  }
  return vdev;
}

}  // namespace pagewire::transport
