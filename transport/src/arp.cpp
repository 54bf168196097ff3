#include "pagewire/transport/arp.hpp"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <cstring>
#include <optional>
#include <string>

#include "pagewire/transport/stream.hpp"

namespace pagewire::transport {

namespace {

bool send_arp(const QueueRef& queue, std::uint16_t opcode, const Endpoint& local, const rte_ether_addr& target_mac,
              std::uint32_t target_ip, const rte_ether_addr& destination) {
  const rte_ether_addr& local_mac = local.mac;
  const std::uint32_t local_ip = local.ip;
  rte_mbuf* mbuf = rte_pktmbuf_alloc(queue.pool);
  if (mbuf == nullptr) return false;
  auto* eth = rte_pktmbuf_mtod(mbuf, rte_ether_hdr*);
  rte_ether_addr_copy(&destination, &eth->dst_addr);
  rte_ether_addr_copy(&local_mac, &eth->src_addr);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(opcode);
  rte_ether_addr_copy(&local_mac, &arp->arp_data.arp_sha);
  arp->arp_data.arp_sip = rte_cpu_to_be_32(local_ip);
  rte_ether_addr_copy(&target_mac, &arp->arp_data.arp_tha);
  arp->arp_data.arp_tip = rte_cpu_to_be_32(target_ip);
  // Pad to the Ethernet minimum; a real NIC would, a virtual device may not.
  mbuf->data_len = mbuf->pkt_len = RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN;
  std::memset(reinterpret_cast<std::uint8_t*>(arp + 1), 0,
              mbuf->data_len - sizeof(rte_ether_hdr) - sizeof(rte_arp_hdr));
  tag_vlan(mbuf, local.vlan);
  return transmit_one(queue.port, queue.queue, mbuf);
}

// The ARP message of a frame on our VLAN, or nullptr.
const rte_arp_hdr* arp_of(const rte_mbuf* mbuf, std::uint16_t vlan) {
  const LinkHeader link = link_header(mbuf);
  if (link.ether_type != RTE_ETHER_TYPE_ARP || link.vlan != vlan ||
      rte_pktmbuf_data_len(mbuf) < link.bytes + sizeof(rte_arp_hdr)) {
    return nullptr;
  }
  const auto* arp = rte_pktmbuf_mtod_offset(mbuf, const rte_arp_hdr*, link.bytes);
  if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != RTE_ETHER_ADDR_LEN ||
      arp->arp_plen != 4) {
    return nullptr;
  }
  return arp;
}

}  // namespace

bool answer_arp(const rte_mbuf* mbuf, const Endpoint& local, const QueueRef& queue) {
  if (link_header(mbuf).ether_type != RTE_ETHER_TYPE_ARP) return false;
  const rte_arp_hdr* arp = arp_of(mbuf, local.vlan);
  if (arp != nullptr && arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) &&
      rte_be_to_cpu_32(arp->arp_data.arp_tip) == local.ip) {
    send_arp(queue, RTE_ARP_OP_REPLY, local, arp->arp_data.arp_sha, rte_be_to_cpu_32(arp->arp_data.arp_sip),
             arp->arp_data.arp_sha);
  }
  return true;
}

Result<rte_ether_addr> resolve_mac(const QueueRef& queue, const Endpoint& local, std::uint32_t ip,
                                   std::uint32_t tries, std::uint32_t interval_ms, const StopReason* cancel) {
  rte_ether_addr broadcast;
  std::memset(&broadcast, 0xff, sizeof broadcast);
  const rte_ether_addr unknown{};
  rte_mbuf* burst[32];
  for (std::uint32_t attempt = 0; attempt < tries; ++attempt) {
    if (cancel != nullptr && cancel->is_set()) return make_error(ErrorCode::kCancelled, "cancelled: " + cancel->reason());
    send_arp(queue, RTE_ARP_OP_REQUEST, local, unknown, ip, broadcast);
    const std::uint64_t deadline = rte_rdtsc() + std::uint64_t{interval_ms} * rte_get_tsc_hz() / 1000;
    while (rte_rdtsc() < deadline) {
      const std::uint16_t n = rte_eth_rx_burst(queue.port, queue.queue, burst, 32);
      std::optional<rte_ether_addr> found;
      for (std::uint16_t i = 0; i < n; ++i) {
        const rte_arp_hdr* arp = arp_of(burst[i], local.vlan);
        if (arp != nullptr && arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
            rte_be_to_cpu_32(arp->arp_data.arp_sip) == ip) {
          found = arp->arp_data.arp_sha;
        } else {
          answer_arp(burst[i], local, queue);
        }
        rte_pktmbuf_free(burst[i]);
      }
      if (found) return *found;
      if (n == 0) rte_pause();
    }
  }
  return make_error("no ARP reply from " + ip_text(ip) + " after " + std::to_string(tries) +
                    " requests: is the next hop up and the address right? (--peer-mac, a static peer MAC, skips ARP)");
}

}  // namespace pagewire::transport
