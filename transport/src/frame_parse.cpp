// Reading a frame: parse_frame() checks every header of a received packet (hostile until
// proved otherwise) and says where its payload is; open_frame() authenticates and decrypts
// a sealed one.
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "frame_checksum.hpp"
#include "pagewire/transport/fragment_rebuilds.hpp"
#include "pagewire/transport/frame.hpp"

namespace pagewire::transport {

namespace {

ReceivedFrame dropped(FrameDrop drop) {
  ReceivedFrame frame;
  frame.drop = drop;
  return frame;
}

bool known_type(std::uint8_t type) {
  return type >= static_cast<std::uint8_t>(FrameType::kHello) && type <= kLastFrameType;
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

// Where a packet's parts are, once its link, IPv4 and UDP headers were checked.
struct Datagram {
  LinkHeader link;
  const rte_ipv4_hdr* ip = nullptr;
  const rte_udp_hdr* udp = nullptr;
  std::size_t ip_bytes = 0;
  std::size_t udp_bytes = 0;
};

// Ethernet and IPv4: to our MAC, VLAN and address from our peer, well formed, not an IP
// fragment, UDP, its header summing right.
FrameDrop check_ip(const rte_mbuf* mbuf, const Path& path, Datagram* datagram) {
  const std::size_t length = rte_pktmbuf_pkt_len(mbuf);
  const LinkHeader link = datagram->link = link_header(mbuf);
  if (link.bytes == 0 || length < link.bytes + kIpv4Bytes) return FrameDrop::kTruncated;
  // Headers are read from the first segment; the packet's length bounds the rest.
  if (mbuf->next != nullptr && rte_pktmbuf_data_len(mbuf) < link.bytes + kIpOverhead) return FrameDrop::kMultiSegment;
  const auto* eth = rte_pktmbuf_mtod(mbuf, const rte_ether_hdr*);
  if (link.ether_type != RTE_ETHER_TYPE_IPV4) return FrameDrop::kNotIpv4;
  if (link.vlan != path.local.vlan || !rte_is_same_ether_addr(&eth->dst_addr, &path.local.mac)) {
    return FrameDrop::kNotForUs;
  }
  const auto* ip = datagram->ip = rte_pktmbuf_mtod_offset(mbuf, const rte_ipv4_hdr*, link.bytes);
  const std::size_t ip_bytes = datagram->ip_bytes = rte_be_to_cpu_16(ip->total_length);
  if (ip->version_ihl != 0x45 || ip_bytes < kIpv4Bytes + kUdpBytes || ip_bytes > length - link.bytes ||
      (rte_be_to_cpu_16(ip->fragment_offset) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0) {
    return FrameDrop::kBadIpHeader;
  }
  if (rte_be_to_cpu_32(ip->dst_addr) != path.local.ip || rte_be_to_cpu_32(ip->src_addr) != path.peer.ip) {
    return FrameDrop::kNotForUs;
  }
  if (ip->next_proto_id != IPPROTO_UDP) return FrameDrop::kNotUdp;
  const std::uint64_t ip_checked = mbuf->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ip_checked == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (ip_checked != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_ipv4_cksum(ip) != 0)) {  // 0: the header sums right
    return FrameDrop::kBadChecksum;
  }
  return FrameDrop::kNone;
}

// UDP: to one of the session's ports, as long as the IP packet says and long enough for the
// prefix every version's FrameHeader keeps, summed right where a checksum is wanted.
FrameDrop check_udp(const rte_mbuf* mbuf, const Path& path, std::uint16_t streams, Datagram* datagram) {
  const auto* udp = datagram->udp = reinterpret_cast<const rte_udp_hdr*>(datagram->ip + 1);
  const std::uint16_t port = rte_be_to_cpu_16(udp->dst_port);
  if (port < path.local.udp_port || port >= path.local.udp_port + streams) return FrameDrop::kWrongPort;
  const std::size_t udp_bytes = datagram->udp_bytes = rte_be_to_cpu_16(udp->dgram_len);
  if (udp_bytes != datagram->ip_bytes - kIpv4Bytes || udp_bytes < kUdpBytes + kVersionPrefixBytes) {
    return FrameDrop::kTruncated;
  }
  const std::uint64_t udp_checked = mbuf->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  const bool udp_bad = udp->dgram_cksum == 0 ? path.udp_checksum  // missing where we require one
                       : udp_checked == RTE_MBUF_F_RX_L4_CKSUM_BAD ? true
                       : udp_checked == RTE_MBUF_F_RX_L4_CKSUM_GOOD ? false
                       : mbuf->next != nullptr
                           ? udp_checksum_of_chain(mbuf, datagram->ip, datagram->link.bytes + kIpv4Bytes) != 0xffff
                           : rte_ipv4_udptcp_cksum_verify(datagram->ip, udp) != 0;
  return udp_bad ? FrameDrop::kBadChecksum : FrameDrop::kNone;
}

// A frame of another protocol version: dropped, with what the prefix every version keeps
// says (type, stream, session), so that a HELLO can be refused and a REFUSE understood.
ReceivedFrame other_version(const FrameHeader& header) {
  ReceivedFrame frame = dropped(FrameDrop::kBadVersion);
  frame.version = header.version;
  frame.type = static_cast<FrameType>(header.type);
  frame.stream = header.stream.get();
  frame.session = header.session.get();
  return frame;
}

// This version's header: a known type and flags, reserved bytes 0, of our session (if it is
// known), a stream of ours, the payload (and trailer) inside the datagram.
ReceivedFrame read_header(const FrameHeader& header, const Datagram& datagram, std::uint16_t streams,
                          std::uint32_t session) {
  const std::uint16_t flags = header.flags.get();
  if (!known_type(header.type) || (flags & ~(kFrameSealed | kFrameFragment | kFrameRecordBounds)) != 0 ||
      ((flags & kFrameRecordBounds) != 0 && static_cast<FrameType>(header.type) != FrameType::kData) ||
      header.reserved.get() != 0) {
    return dropped(FrameDrop::kUnknownType);
  }
  if (session != 0 && header.session.get() != session) return dropped(FrameDrop::kWrongSession);
  const std::uint16_t payload_bytes = header.payload_bytes.get();
  const bool sealed = (header.flags.get() & kFrameSealed) != 0;
  if (payload_bytes + (sealed ? sizeof(SealTrailer) : 0) > datagram.udp_bytes - kUdpBytes - sizeof(FrameHeader)) {
    return dropped(FrameDrop::kTruncated);
  }
  if (header.stream.get() >= streams) return dropped(FrameDrop::kWrongPort);
  ReceivedFrame frame;
  frame.version = header.version;
  frame.type = static_cast<FrameType>(header.type);
  frame.stream = header.stream.get();
  frame.session = header.session.get();
  frame.seq = header.seq.get();
  frame.sack = header.sack.get();
  frame.window = header.window.get();
  frame.payload_offset = static_cast<std::uint32_t>(datagram.link.bytes + kIpOverhead);
  frame.payload_bytes = payload_bytes;
  frame.ip_bytes = static_cast<std::uint16_t>(datagram.ip_bytes);
  frame.sealed = sealed;
  frame.record_bounds = flags & kFrameRecordBounds;
  return frame;
}

// A part must be DATA, lie inside a payload no frame could exceed, and be a part as the
// rebuild counts them (FragmentRebuilds::is_part), so the receiver's bookkeeping is exact.
FrameDrop read_fragment(const FrameHeader& header, ReceivedFrame* frame) {
  const std::uint32_t total = header.fragment_total.get();
  const std::uint32_t offset = header.fragment_offset.get();
  if (frame->type != FrameType::kData || total > payload_for_mtu(kMaxPathMtu) ||
      !FragmentRebuilds<rte_mbuf>::is_part(total, offset, frame->payload_bytes)) {
    return FrameDrop::kTruncated;
  }
  frame->fragment = true;
  frame->fragment_offset = offset;
  frame->fragment_total = static_cast<std::uint16_t>(total);
  return FrameDrop::kNone;
}

}  // namespace

ReceivedFrame parse_frame(const rte_mbuf* mbuf, const Path& path, std::uint16_t streams,
                          std::uint32_t session) {
  if (mbuf->next != nullptr && !consistent_chain(mbuf)) return dropped(FrameDrop::kMultiSegment);
  Datagram datagram;
  if (const FrameDrop drop = check_ip(mbuf, path, &datagram); drop != FrameDrop::kNone) return dropped(drop);
  if (const FrameDrop drop = check_udp(mbuf, path, streams, &datagram); drop != FrameDrop::kNone) return dropped(drop);
  FrameHeader header{};
  std::memcpy(&header, datagram.udp + 1, kVersionPrefixBytes);
  if (header.magic.get() != kFrameMagic) return dropped(FrameDrop::kBadMagic);
  if (header.version != kProtocolVersion) return other_version(header);
  if (datagram.udp_bytes < kUdpBytes + sizeof header) return dropped(FrameDrop::kTruncated);
  std::memcpy(&header, datagram.udp + 1, sizeof header);
  ReceivedFrame frame = read_header(header, datagram, streams, session);
  if (frame.drop != FrameDrop::kNone) return frame;
  const std::size_t payload_end = frame.payload_offset + frame.payload_bytes + (frame.sealed ? sizeof(SealTrailer) : 0);
  if (payload_end <= rte_pktmbuf_data_len(mbuf)) {
    frame.payload = reinterpret_cast<const std::byte*>(datagram.udp + 1) + sizeof(FrameHeader);
  } else if (frame.type != FrameType::kData) {
    return dropped(FrameDrop::kMultiSegment);  // control frames are small: one segment
  }
  if ((header.flags.get() & kFrameFragment) != 0) {
    if (const FrameDrop drop = read_fragment(header, &frame); drop != FrameDrop::kNone) return dropped(drop);
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

std::uint16_t held_record_bounds(const rte_mbuf* mbuf) {
  return header_of(mbuf).flags.get() & kFrameRecordBounds;
}

}  // namespace pagewire::transport
