// Frames: names for addresses and drop reasons, the link header, and bytes over a segment
// chain. Reading a frame: frame_parse.cpp; building one: frame_build.cpp.
#include "pagewire/transport/frame.hpp"

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "frame_checksum.hpp"

namespace pagewire::transport {

std::string ip_text(std::uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
         std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
}

std::string mac_text(const rte_ether_addr& mac) {
  char text[RTE_ETHER_ADDR_FMT_SIZE];
  rte_ether_format_addr(text, sizeof text, &mac);
  return text;
}

std::string endpoint_text(const Endpoint& endpoint) {
  std::string text = ip_text(endpoint.ip) + " at " + mac_text(endpoint.mac);
  if (endpoint.vlan != 0) text += " on VLAN " + std::to_string(endpoint.vlan);
  return text;
}

std::string_view to_string(FrameDrop drop) {
  switch (drop) {
    case FrameDrop::kNone: return "none";
    case FrameDrop::kNotIpv4: return "not IPv4";
    case FrameDrop::kNotForUs: return "not addressed to us";
    case FrameDrop::kBadIpHeader: return "bad IPv4 header";
    case FrameDrop::kNotUdp: return "not UDP";
    case FrameDrop::kWrongPort: return "not a pagewire UDP port";
    case FrameDrop::kBadChecksum: return "bad checksum";
    case FrameDrop::kTruncated: return "truncated";
    case FrameDrop::kBadMagic: return "bad magic";
    case FrameDrop::kBadVersion: return "unsupported protocol version";
    case FrameDrop::kWrongSession: return "another session";
    case FrameDrop::kUnknownType: return "unknown frame type";
    case FrameDrop::kMultiSegment: return "unusable segment chain";
    case FrameDrop::kSealMismatch: return "seal mismatch";
    case FrameDrop::kBadTag: return "authentication failed";
    case FrameDrop::kReplayed: return "replayed";
    case FrameDrop::kNoMbuf: return "no mbuf to decrypt into";
    case FrameDrop::kRefusedHello: return "HELLO refused";
    case FrameDrop::kQueryLimited: return "outcome query over its rate";
    case FrameDrop::kOutOfTurn: return "out of turn";
    case FrameDrop::kWrongDirection: return "a frame this end sends";
  }
  return "?";
}

std::string_view counter_name(FrameDrop drop) {
  switch (drop) {
    case FrameDrop::kNone: return "none";
    case FrameDrop::kNotIpv4: return "not_ipv4";
    case FrameDrop::kNotForUs: return "not_for_us";
    case FrameDrop::kBadIpHeader: return "bad_ip_header";
    case FrameDrop::kNotUdp: return "not_udp";
    case FrameDrop::kWrongPort: return "wrong_port";
    case FrameDrop::kBadChecksum: return "bad_checksum";
    case FrameDrop::kTruncated: return "truncated";
    case FrameDrop::kBadMagic: return "bad_magic";
    case FrameDrop::kBadVersion: return "bad_version";
    case FrameDrop::kWrongSession: return "wrong_session";
    case FrameDrop::kUnknownType: return "unknown_type";
    case FrameDrop::kMultiSegment: return "multi_segment";
    case FrameDrop::kSealMismatch: return "seal_mismatch";
    case FrameDrop::kBadTag: return "bad_tag";
    case FrameDrop::kReplayed: return "replayed";
    case FrameDrop::kNoMbuf: return "no_mbuf";
    case FrameDrop::kRefusedHello: return "refused_hello";
    case FrameDrop::kQueryLimited: return "query_limited";
    case FrameDrop::kOutOfTurn: return "out_of_turn";
    case FrameDrop::kWrongDirection: return "wrong_direction";
  }
  return "unknown";
}

LinkHeader link_header(const rte_mbuf* mbuf) {
  LinkHeader link;
  const std::size_t length = rte_pktmbuf_data_len(mbuf);
  if (length < kEthernetBytes) return link;
  const auto* eth = rte_pktmbuf_mtod(mbuf, const rte_ether_hdr*);
  link.ether_type = rte_be_to_cpu_16(eth->ether_type);
  link.bytes = kEthernetBytes;
  if (mbuf->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED) link.vlan = mbuf->vlan_tci & 0xfff;
  if (link.ether_type == RTE_ETHER_TYPE_VLAN) {
    if (length < kEthernetBytes + sizeof(rte_vlan_hdr)) return LinkHeader{};
    const auto* tag = reinterpret_cast<const rte_vlan_hdr*>(eth + 1);
    link.vlan = rte_be_to_cpu_16(tag->vlan_tci) & 0xfff;
    link.ether_type = rte_be_to_cpu_16(tag->eth_proto);
    link.bytes = kEthernetBytes + sizeof(rte_vlan_hdr);
  }
  return link;
}

void tag_vlan(rte_mbuf* mbuf, std::uint16_t vlan) {
  if (vlan == 0) return;
  auto* moved = rte_pktmbuf_mtod(mbuf, std::uint8_t*);
  auto* start = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_prepend(mbuf, sizeof(rte_vlan_hdr)));
  std::memmove(start, moved, 2 * RTE_ETHER_ADDR_LEN);
  // The EtherType did not move: it is now the tag's inner type.
  auto* eth = reinterpret_cast<rte_ether_hdr*>(start);
  auto* tag = reinterpret_cast<rte_vlan_hdr*>(eth + 1);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
  tag->vlan_tci = rte_cpu_to_be_16(vlan);
}

void copy_bytes(const rte_mbuf* mbuf, std::uint32_t offset, std::uint32_t length, std::byte* out) {
  visit_bytes(mbuf, offset, length, [&out](const std::byte* piece, std::size_t bytes) {
    std::memcpy(out, piece, bytes);
    out += bytes;
  });
}

void write_bytes(rte_mbuf* mbuf, std::uint32_t offset, const std::byte* bytes, std::uint32_t length) {
  visit_bytes(mbuf, offset, length, [&bytes](const std::byte* piece, std::size_t size) {
    std::memcpy(const_cast<std::byte*>(piece), bytes, size);  // our own buffer (see the contract)
    bytes += size;
  });
}

rte_mbuf* alloc_packet(rte_mempool* pool, std::uint32_t bytes) {
  rte_mbuf* head = nullptr;
  std::uint32_t left = bytes;
  do {
    rte_mbuf* segment = rte_pktmbuf_alloc(pool);
    if (segment == nullptr || rte_pktmbuf_tailroom(segment) == 0) {
      if (segment != nullptr) rte_pktmbuf_free(segment);
      if (head != nullptr) rte_pktmbuf_free(head);
      return nullptr;
    }
    const auto take = static_cast<std::uint16_t>(std::min<std::uint32_t>(left, rte_pktmbuf_tailroom(segment)));
    rte_pktmbuf_append(segment, take);
    left -= take;
    if (head == nullptr) {
      head = segment;
    } else if (rte_pktmbuf_chain(head, segment) != 0) {  // more segments than an mbuf can count
      rte_pktmbuf_free(segment);
      rte_pktmbuf_free(head);
      return nullptr;
    }
  } while (left > 0);
  return head;
}

// Summed piece by piece (frame_checksum.hpp says why).
std::uint16_t udp_checksum_of_chain(const rte_mbuf* mbuf, const rte_ipv4_hdr* ip, std::uint32_t udp_offset) {
  const std::uint32_t udp_bytes = rte_be_to_cpu_16(ip->total_length) - kIpv4Bytes;
  std::uint64_t sum = rte_ipv4_phdr_cksum(ip, 0);
  std::uint32_t done = 0;
  visit_bytes(mbuf, udp_offset, udp_bytes, [&](const std::byte* piece, std::size_t bytes) {
    std::uint16_t part = rte_raw_cksum(piece, bytes);
    if (done & 1) part = rte_bswap16(part);
    sum += part;
    done += static_cast<std::uint32_t>(bytes);
  });
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);  // all ones when the datagram sums right
}

}  // namespace pagewire::transport
