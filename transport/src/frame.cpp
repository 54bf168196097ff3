#include "pagewire/transport/frame.hpp"

#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

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
  }
  return "unknown";
}

namespace {

ReceivedFrame dropped(FrameDrop drop) {
  ReceivedFrame frame;
  frame.drop = drop;
  return frame;
}

bool known_type(std::uint8_t type) {
  return type >= static_cast<std::uint8_t>(FrameType::kHello) && type <= kLastFrameType;
}

}  // namespace

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

namespace {

// The UDP checksum field's value for a datagram over a segment chain (0 in the field while
// summing, as sent): the sum of each piece, swapped where a piece starts at an odd offset.
// DPDK 22.11's rte_ipv4_udptcp_cksum_mbuf() came out differently for two layouts of the
// same bytes in our tests (a zero-copy chain and the same frame scattered anew), so chains
// are summed here, the same way on both ends.
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

// A chain's segment lengths must add up to its packet length, or offsets computed from the
// packet length would run past the last segment.
bool consistent_chain(const rte_mbuf* mbuf) {
  if (mbuf->nb_segs > kMaxFrameSegments) return false;
  std::uint32_t bytes = 0;
  std::uint16_t segments = 0;
  for (const rte_mbuf* segment = mbuf; segment != nullptr; segment = segment->next) {
    if (++segments > kMaxFrameSegments) return false;
    bytes += segment->data_len;
  }
  return bytes == rte_pktmbuf_pkt_len(mbuf);
}

}  // namespace

ReceivedFrame parse_frame(const rte_mbuf* mbuf, const Path& path, std::uint16_t streams,
                          std::uint32_t session) {
  const bool chained = mbuf->next != nullptr;
  if (chained && !consistent_chain(mbuf)) return dropped(FrameDrop::kMultiSegment);
  // Headers are read from the first segment; the packet's length bounds the rest.
  const std::size_t first_segment = rte_pktmbuf_data_len(mbuf);
  const std::size_t length = rte_pktmbuf_pkt_len(mbuf);
  const LinkHeader link = link_header(mbuf);
  if (link.bytes == 0 || length < link.bytes + kIpv4Bytes) return dropped(FrameDrop::kTruncated);
  if (chained && first_segment < link.bytes + kIpOverhead) return dropped(FrameDrop::kMultiSegment);
  const auto* eth = rte_pktmbuf_mtod(mbuf, const rte_ether_hdr*);
  if (link.ether_type != RTE_ETHER_TYPE_IPV4) return dropped(FrameDrop::kNotIpv4);
  if (link.vlan != path.local.vlan || !rte_is_same_ether_addr(&eth->dst_addr, &path.local.mac)) {
    return dropped(FrameDrop::kNotForUs);
  }

  const auto* ip = rte_pktmbuf_mtod_offset(mbuf, const rte_ipv4_hdr*, link.bytes);
  const std::size_t ip_bytes = rte_be_to_cpu_16(ip->total_length);
  if (ip->version_ihl != 0x45 || ip_bytes < kIpv4Bytes + kUdpBytes || ip_bytes > length - link.bytes ||
      (rte_be_to_cpu_16(ip->fragment_offset) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0) {
    return dropped(FrameDrop::kBadIpHeader);
  }
  if (rte_be_to_cpu_32(ip->dst_addr) != path.local.ip || rte_be_to_cpu_32(ip->src_addr) != path.peer.ip) {
    return dropped(FrameDrop::kNotForUs);
  }
  if (ip->next_proto_id != IPPROTO_UDP) return dropped(FrameDrop::kNotUdp);
  const std::uint64_t ip_checked = mbuf->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ip_checked == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (ip_checked != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_ipv4_cksum(ip) != 0)) {  // 0: the header sums right
    return dropped(FrameDrop::kBadChecksum);
  }

  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
  const std::uint16_t port = rte_be_to_cpu_16(udp->dst_port);
  if (port < path.local.udp_port || port >= path.local.udp_port + streams) {
    return dropped(FrameDrop::kWrongPort);
  }
  const std::size_t udp_bytes = rte_be_to_cpu_16(udp->dgram_len);
  if (udp_bytes != ip_bytes - kIpv4Bytes || udp_bytes < kUdpBytes + sizeof(FrameHeader)) {
    return dropped(FrameDrop::kTruncated);
  }
  const std::uint64_t udp_checked = mbuf->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  const bool udp_bad = udp->dgram_cksum == 0 ? path.udp_checksum  // missing where we require one
                       : udp_checked == RTE_MBUF_F_RX_L4_CKSUM_BAD ? true
                       : udp_checked == RTE_MBUF_F_RX_L4_CKSUM_GOOD ? false
                       : chained ? udp_checksum_of_chain(mbuf, ip, link.bytes + kIpv4Bytes) != 0xffff
                                 : rte_ipv4_udptcp_cksum_verify(ip, udp) != 0;
  if (udp_bad) return dropped(FrameDrop::kBadChecksum);

  FrameHeader header;
  std::memcpy(&header, udp + 1, sizeof header);
  if (header.magic.get() != kFrameMagic) return dropped(FrameDrop::kBadMagic);
  if (header.version != kProtocolVersion) return dropped(FrameDrop::kBadVersion);
  if (!known_type(header.type) || (header.flags.get() & ~(kFrameSealed | kFrameFragment)) != 0) {
    return dropped(FrameDrop::kUnknownType);
  }
  if (session != 0 && header.session.get() != session) return dropped(FrameDrop::kWrongSession);
  const std::uint16_t payload_bytes = header.payload_bytes.get();
  const bool sealed = (header.flags.get() & kFrameSealed) != 0;
  if (payload_bytes + (sealed ? sizeof(SealTrailer) : 0) > udp_bytes - kUdpBytes - sizeof(FrameHeader)) {
    return dropped(FrameDrop::kTruncated);
  }
  if (header.stream.get() >= streams) return dropped(FrameDrop::kWrongPort);

  ReceivedFrame frame;
  frame.type = static_cast<FrameType>(header.type);
  frame.stream = header.stream.get();
  frame.session = header.session.get();
  frame.seq = header.seq.get();
  frame.sack = header.sack.get();
  frame.window = header.window.get();
  frame.payload_offset = static_cast<std::uint32_t>(link.bytes + kIpOverhead);
  frame.payload_bytes = payload_bytes;
  frame.ip_bytes = static_cast<std::uint16_t>(ip_bytes);
  frame.sealed = sealed;
  const std::size_t payload_end = frame.payload_offset + payload_bytes + (sealed ? sizeof(SealTrailer) : 0);
  if (payload_end <= first_segment) {
    frame.payload = reinterpret_cast<const std::byte*>(udp + 1) + sizeof(FrameHeader);
  } else if (frame.type != FrameType::kData) {
    return dropped(FrameDrop::kMultiSegment);  // control frames are small: one segment
  }
  if (header.flags.get() & kFrameFragment) {
    // A part must be DATA, start on a unit, hold whole units unless it ends the payload (so
    // the receiver's per-unit bookkeeping is exact), and lie inside a payload no frame could
    // exceed.
    const std::uint64_t total = header.sack.get();
    const std::uint32_t offset = header.window.get();
    const std::uint64_t end = offset + std::uint64_t{payload_bytes};
    if (frame.type != FrameType::kData || offset % kFragmentUnit != 0 || payload_bytes == 0 ||
        total > payload_for_mtu(kMaxPathMtu) || end > total || (end != total && payload_bytes % kFragmentUnit != 0)) {
      return dropped(FrameDrop::kTruncated);
    }
    frame.fragment = true;
    frame.fragment_offset = offset;
    frame.fragment_total = static_cast<std::uint16_t>(total);
  }
  return frame;
}

namespace {

// Frames that prove the key themselves (HelloAuth), or come before there is one.
bool handshake_frame(FrameType type) {
  return type == FrameType::kHello || type == FrameType::kHelloAck || type == FrameType::kRefuse;
}

// The FrameHeader of a frame that parse_frame() accepted.
const FrameHeader& header_of(const rte_mbuf* mbuf) {
  return *rte_pktmbuf_mtod_offset(mbuf, const FrameHeader*, link_header(mbuf).bytes + kIpv4Bytes + kUdpBytes);
}

}  // namespace

FrameDrop open_frame(rte_mbuf** mbuf, ReceivedFrame* frame, FrameCrypto* crypto, rte_mempool* pool) {
  if (!frame->sealed) {
    return crypto == nullptr || handshake_frame(frame->type) ? FrameDrop::kNone : FrameDrop::kSealMismatch;
  }
  if (crypto == nullptr) return FrameDrop::kSealMismatch;
  FrameHeader header;
  copy_bytes(*mbuf, frame->payload_offset - sizeof header, sizeof header, reinterpret_cast<std::byte*>(&header));
  SealTrailer trailer;
  copy_bytes(*mbuf, frame->payload_offset + frame->payload_bytes, sizeof trailer, reinterpret_cast<std::byte*>(&trailer));
  // Decrypting writes: only into buffers nobody else holds (a sender's retransmission copy
  // on an in-memory link, a page sent by reference). A shared frame is copied first.
  rte_mbuf* target = *mbuf;
  bool shared = false;
  for (const rte_mbuf* segment = *mbuf; segment != nullptr; segment = segment->next) {
    shared |= rte_mbuf_refcnt_read(segment) != 1 || !RTE_MBUF_DIRECT(segment);
  }
  if (crypto->encrypts() && shared) {
    // The copy keeps the headers as they arrived, a VLAN tag included (a tag the port
    // stripped goes with the original's flags: the copy is untagged, as its bytes say).
    target = rte_pktmbuf_copy(*mbuf, pool, 0, frame->payload_offset + frame->payload_bytes);
    if (target == nullptr) return FrameDrop::kNoMbuf;
  }
  std::array<CipherPiece, kMaxFrameSegments> pieces;
  std::size_t count = 0;
  visit_bytes(target, frame->payload_offset, frame->payload_bytes, [&](const std::byte* piece, std::size_t bytes) {
    pieces[count++] = CipherPiece{.bytes = const_cast<std::byte*>(piece), .length = bytes};
  });
  const OpenOutcome outcome = crypto->open(header, {pieces.data(), count}, trailer, frame->type == FrameType::kData);
  if (outcome != OpenOutcome::kOk) {
    if (target != *mbuf) rte_pktmbuf_free(target);
    return outcome == OpenOutcome::kBadTag ? FrameDrop::kBadTag : FrameDrop::kReplayed;
  }
  if (target != *mbuf) {
    rte_pktmbuf_free(*mbuf);
    *mbuf = target;
  }
  if (frame->payload != nullptr) frame->payload = rte_pktmbuf_mtod_offset(target, const std::byte*, frame->payload_offset);
  frame->sealed = false;
  return FrameDrop::kNone;
}

PayloadRange held_payload(const rte_mbuf* mbuf) {
  const auto offset = static_cast<std::uint32_t>(link_header(mbuf).bytes + kIpOverhead);
  return {offset, header_of(mbuf).payload_bytes.get()};
}

void finish_frame(rte_mbuf* mbuf, const Path& path, const FrameFields& fields,
                  std::uint16_t payload_bytes, std::uint16_t pad_to_ip_bytes, FrameCrypto* crypto) {
  std::size_t ip_bytes = kIpOverhead + payload_bytes + (crypto != nullptr ? sizeof(SealTrailer) : 0);
  if (pad_to_ip_bytes > ip_bytes) {
    std::memset(rte_pktmbuf_mtod_offset(mbuf, std::byte*, kEthernetBytes + ip_bytes), 0, pad_to_ip_bytes - ip_bytes);
    ip_bytes = pad_to_ip_bytes;
  }
  mbuf->pkt_len = static_cast<std::uint32_t>(kEthernetBytes + ip_bytes);
  const bool chained = mbuf->next != nullptr;
  if (!chained) mbuf->data_len = static_cast<std::uint16_t>(mbuf->pkt_len);

  auto* eth = rte_pktmbuf_mtod(mbuf, rte_ether_hdr*);
  rte_ether_addr_copy(&path.peer.mac, &eth->dst_addr);
  rte_ether_addr_copy(&path.local.mac, &eth->src_addr);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);

  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = 0x45;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(static_cast<std::uint16_t>(ip_bytes));
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->hdr_checksum = 0;
  ip->src_addr = rte_cpu_to_be_32(path.local.ip);
  ip->dst_addr = rte_cpu_to_be_32(path.peer.ip);

  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(path.local.udp_port + fields.stream));
  udp->dst_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(path.peer.udp_port + fields.stream));
  udp->dgram_len = rte_cpu_to_be_16(static_cast<std::uint16_t>(ip_bytes - kIpv4Bytes));
  udp->dgram_cksum = 0;

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
  header.flags.set(static_cast<std::uint16_t>((crypto != nullptr ? kFrameSealed : 0) |
                                              (fields.fragment ? kFrameFragment : 0)));
  std::memcpy(udp + 1, &header, sizeof header);
  if (crypto != nullptr) {
    SealTrailer trailer;
    crypto->seal(header, {frame_payload(mbuf), payload_bytes}, &trailer);
    std::memcpy(frame_payload(mbuf) + payload_bytes, &trailer, sizeof trailer);
  }

  if (path.tx_checksum_offload) {
    // The port sums the IP header and the datagram; it wants the pseudo-header's sum in
    // the UDP field to start from.
    mbuf->l2_len = kEthernetBytes + (path.local.vlan != 0 ? sizeof(rte_vlan_hdr) : 0);
    mbuf->l3_len = kIpv4Bytes;
    mbuf->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    if (path.udp_checksum) {
      mbuf->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
      udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, mbuf->ol_flags);
    }
  } else {
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    if (path.udp_checksum) {
      if (chained) {
        const std::uint16_t sum = static_cast<std::uint16_t>(~udp_checksum_of_chain(mbuf, ip, kEthernetBytes + kIpv4Bytes));
        udp->dgram_cksum = sum == 0 ? 0xffff : sum;  // 0 would mean "no checksum"
      } else {
        udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
      }
    }
  }
  tag_vlan(mbuf, path.local.vlan);
}

bool transmit_one(std::uint16_t port, std::uint16_t queue, rte_mbuf* frame) {
  if (rte_eth_tx_burst(port, queue, &frame, 1) == 1) return true;
  rte_pktmbuf_free(frame);
  return false;
}

}  // namespace pagewire::transport
