// Building a frame: finish_frame() writes the Ethernet, IPv4, UDP and frame headers around
// a payload already in place, seals it, and sums (or has the port sum) its checksums.
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "frame_checksum.hpp"
#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/frame_crypto.hpp"

namespace pagewire::transport {

namespace {

rte_ipv4_hdr* write_ethernet_and_ip(rte_mbuf* mbuf, const Path& path, std::size_t ip_bytes) {
  auto* eth = rte_pktmbuf_mtod(mbuf, rte_ether_hdr*);
  rte_ether_addr_copy(&path.peer.mac, &eth->dst_addr);
  rte_ether_addr_copy(&path.local.mac, &eth->src_addr);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = 0x45;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(static_cast<std::uint16_t>(ip_bytes));
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);  // never fragmented: the path MTU is probed
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->hdr_checksum = 0;
  ip->src_addr = rte_cpu_to_be_32(path.local.ip);
  ip->dst_addr = rte_cpu_to_be_32(path.peer.ip);
  return ip;
}

rte_udp_hdr* write_udp(rte_ipv4_hdr* ip, const Path& path, std::uint16_t stream, std::size_t ip_bytes) {
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(path.local.udp_port + stream));
  udp->dst_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(path.peer.udp_port + stream));
  udp->dgram_len = rte_cpu_to_be_16(static_cast<std::uint16_t>(ip_bytes - kIpv4Bytes));
  udp->dgram_cksum = 0;
  return udp;
}

FrameHeader header_for(const FrameFields& fields, std::uint16_t payload_bytes, bool sealed) {
  FrameHeader header{};
  header.magic.set(kFrameMagic);
  header.version = kProtocolVersion;
  header.type = static_cast<std::uint8_t>(fields.type);
  header.stream.set(fields.stream);
  header.session.set(fields.session);
  header.seq.set(fields.seq);
  header.sack.set(fields.sack);
  header.window.set(fields.window);
  header.payload_bytes.set(payload_bytes);
  header.flags.set(static_cast<std::uint16_t>((sealed ? kFrameSealed : 0) | (fields.fragment ? kFrameFragment : 0) |
                                              (fields.record_bounds & kFrameRecordBounds)));
  header.fragment_offset.set(fields.fragment_offset);
  header.fragment_total.set(fields.fragment_total);
  return header;
}

// The port sums the IP header and the datagram where it can (it wants the pseudo-header's
// sum in the UDP field to start from); else they are summed here.
void sum_checksums(rte_mbuf* mbuf, const Path& path, rte_ipv4_hdr* ip, rte_udp_hdr* udp) {
  if (path.tx_checksum_offload) {
    mbuf->l2_len = kEthernetBytes + (path.local.vlan != 0 ? sizeof(rte_vlan_hdr) : 0);
    mbuf->l3_len = kIpv4Bytes;
    mbuf->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    if (path.udp_checksum) {
      mbuf->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
      udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, mbuf->ol_flags);
    }
    return;
  }
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  if (!path.udp_checksum) return;
  if (mbuf->next != nullptr) {
    const auto sum = static_cast<std::uint16_t>(~udp_checksum_of_chain(mbuf, ip, kEthernetBytes + kIpv4Bytes));
    udp->dgram_cksum = sum == 0 ? 0xffff : sum;  // 0 would mean "no checksum"
  } else {
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  }
}

}  // namespace

void finish_frame(rte_mbuf* mbuf, const Path& path, const FrameFields& fields,
                  std::uint16_t payload_bytes, std::uint16_t pad_to_ip_bytes, FrameCrypto* crypto) {
  std::size_t ip_bytes = kIpOverhead + payload_bytes + (crypto != nullptr ? sizeof(SealTrailer) : 0);
  if (pad_to_ip_bytes > ip_bytes) {
    std::memset(rte_pktmbuf_mtod_offset(mbuf, std::byte*, kEthernetBytes + ip_bytes), 0, pad_to_ip_bytes - ip_bytes);
    ip_bytes = pad_to_ip_bytes;
  }
  mbuf->pkt_len = static_cast<std::uint32_t>(kEthernetBytes + ip_bytes);
  if (mbuf->next == nullptr) mbuf->data_len = static_cast<std::uint16_t>(mbuf->pkt_len);
  rte_ipv4_hdr* ip = write_ethernet_and_ip(mbuf, path, ip_bytes);
  rte_udp_hdr* udp = write_udp(ip, path, fields.stream, ip_bytes);
  const FrameHeader header = header_for(fields, payload_bytes, crypto != nullptr);
  std::memcpy(udp + 1, &header, sizeof header);
  if (crypto != nullptr) {
    SealTrailer trailer;
    crypto->seal(header, {frame_payload(mbuf), payload_bytes}, &trailer);
    std::memcpy(frame_payload(mbuf) + payload_bytes, &trailer, sizeof trailer);
  }
  sum_checksums(mbuf, path, ip, udp);
  tag_vlan(mbuf, path.local.vlan);
}

bool transmit_one(std::uint16_t port, std::uint16_t queue, rte_mbuf* frame) {
  if (rte_eth_tx_burst(port, queue, &frame, 1) == 1) return true;
  rte_pktmbuf_free(frame);
  return false;
}

}  // namespace pagewire::transport
