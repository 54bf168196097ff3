// Building and validating pagewire frames in DPDK mbufs. A frame is one segment, or a chain
// when the port scatters what it receives into small buffers (port.hpp) or RAW pages go out
// by reference (zero_copy_frame.hpp). Either way every header lies in the first segment;
// only a DATA frame's payload may run over several.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "pagewire/transport/frame_crypto.hpp"
#include "pagewire/transport/frame_drop.hpp"
#include "pagewire/transport/path.hpp"
#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

// The link-layer view of a received frame: its EtherType after any 802.1Q tag, how many
// bytes precede the network header, and the VLAN it came on (0: untagged).
struct LinkHeader {
  std::uint16_t ether_type = 0;  // host byte order; 0 when the frame is too short
  std::uint16_t bytes = 0;
  std::uint16_t vlan = 0;
};
LinkHeader link_header(const rte_mbuf* mbuf);
// Tags a frame built untagged for `vlan` (nothing for 0): moves its MAC addresses into the
// mbuf's headroom. The frame must be ours alone (not yet handed to a device).
void tag_vlan(rte_mbuf* mbuf, std::uint16_t vlan);

struct ReceivedFrame {
  FrameDrop drop = FrameDrop::kNone;
  // The sender's protocol version. Another than ours: dropped (kBadVersion) with only the
  // prefix every version keeps read (type, stream, session).
  std::uint8_t version = 0;
  FrameType type{};
  std::uint16_t stream = 0;
  std::uint32_t session = 0;
  std::uint32_t seq = 0;
  std::uint64_t sack = 0;
  std::uint32_t window = 0;
  // The payload's bytes are at payload_offset of the packet. `payload` points at them when
  // they lie in one segment (always, except a scattered DATA frame's: visit_payload()).
  const std::byte* payload = nullptr;
  std::uint32_t payload_offset = 0;
  std::uint16_t payload_bytes = 0;
  std::uint16_t ip_bytes = 0;  // IPv4 total length: what the path carried
  bool sealed = false;         // a SealTrailer follows the payload
  bool fragment = false;                 // kFrameFragment: part of frame seq's payload
  std::uint32_t fragment_offset = 0;     // where this part goes, a multiple of kFragmentUnit
  std::uint16_t fragment_total = 0;      // the whole payload's length
  std::uint16_t record_bounds = 0;       // DATA: kFrameRecordStart | kFrameRecordEnd as sent
};

// A chain longer than this is not a frame of ours (a 9000-byte frame in 2 KiB buffers takes
// 5 segments; a zero-copy frame, two per page it carries).
inline constexpr std::uint16_t kMaxFrameSegments = 16;

// Calls visit(const std::byte*, std::size_t) for each piece of the bytes [offset, offset +
// length) of the packet in `mbuf`, in order, over its segments. The range must lie in the
// packet (parse_frame() checked it for a frame's payload).
template <typename Visit>
void visit_bytes(const rte_mbuf* mbuf, std::uint32_t offset, std::uint32_t length, Visit&& visit) {
  for (const rte_mbuf* segment = mbuf; segment != nullptr && length > 0; segment = segment->next) {
    const std::uint32_t here = segment->data_len;
    if (offset >= here) {
      offset -= here;
      continue;
    }
    const std::uint32_t take = std::min(length, here - offset);
    visit(rte_pktmbuf_mtod_offset(segment, const std::byte*, offset), std::size_t{take});
    offset = 0;
    length -= take;
  }
}

// Copies bytes [offset, offset + length) of the packet to `out`, over its segments.
void copy_bytes(const rte_mbuf* mbuf, std::uint32_t offset, std::uint32_t length, std::byte* out);

// Writes `length` bytes to [offset, offset + length) of the packet in `mbuf`, which must be
// ours alone and long enough.
void write_bytes(rte_mbuf* mbuf, std::uint32_t offset, const std::byte* bytes, std::uint32_t length);

// A packet of `bytes` from `pool`: one mbuf, or a chain where one cannot hold it. Null when
// the pool runs short.
rte_mbuf* alloc_packet(rte_mempool* pool, std::uint32_t bytes);

// Validates every header and length of `mbuf` against `path` before any payload byte is
// exposed. `session` 0 accepts any session (a destination waiting for HELLO). Checksums a
// port verified (mbuf flags GOOD or BAD) are taken as it says; the rest are computed.
ReceivedFrame parse_frame(const rte_mbuf* mbuf, const Path& path, std::uint16_t streams,
                          std::uint32_t session);

struct FrameFields {
  FrameType type;
  std::uint16_t stream;
  std::uint32_t session;
  std::uint32_t seq = 0;
  std::uint64_t sack = 0;
  std::uint32_t window = 0;
  bool fragment = false;  // DATA: a part of frame seq's payload, cut after the path's MTU fell
  std::uint16_t fragment_offset = 0;  // where the part goes, a multiple of kFragmentUnit
  std::uint16_t fragment_total = 0;   // the whole payload's length
  std::uint16_t record_bounds = 0;  // DATA: kFrameRecordStart and/or kFrameRecordEnd
};

// Where the payload of a frame being built goes (after all headers).
inline std::byte* frame_payload(rte_mbuf* mbuf) {
  return rte_pktmbuf_mtod_offset(mbuf, std::byte*,
                                 kEthernetBytes + kIpv4Bytes + kUdpBytes + sizeof(FrameHeader));
}

// Fills Ethernet/IPv4/UDP/FrameHeader around `payload_bytes` already written at
// frame_payload(), sets the mbuf lengths, and computes the checksums (in software, or asks
// the port to: Path::tx_checksum_offload). `pad_to_ip_bytes` > 0 pads the IP packet to
// that size (path MTU probes); DF is always set: pagewire never relies on IP fragmentation.
// With `crypto`, the frame is sealed: the payload is encrypted in place if the session
// encrypts, and a SealTrailer follows it (the caller leaves room: payload_for_mtu(mtu, true)).
// A chain (zero_copy_frame.hpp) comes with its segments' lengths set, the headers' room in
// the first; it is neither padded nor sealed.
void finish_frame(rte_mbuf* mbuf, const Path& path, const FrameFields& fields,
                  std::uint16_t payload_bytes, std::uint16_t pad_to_ip_bytes = 0,
                  FrameCrypto* crypto = nullptr);

// Sends one finished frame on a port's queue; the device owns it from here. False, with
// the frame freed, when the queue is full.
bool transmit_one(std::uint16_t port, std::uint16_t queue, rte_mbuf* frame);

// The one way a single frame goes out (control frames, ACKs, probes, FIN, RESEND; DATA
// goes in bursts): `fill` writes the payload at frame_payload() and returns its bytes,
// finish_frame() adds the headers, seals and sums, and the device takes the frame or it is
// freed. `mbuf` is a buffer the caller took from its pool; null is kNoBuffer.
enum class SendResult : std::uint8_t { kSent, kNoBuffer, kQueueFull };
template <typename Fill>
SendResult send_frame(rte_mbuf* mbuf, std::uint16_t port, std::uint16_t queue, const Path& path,
                      const FrameFields& fields, FrameCrypto* crypto, Fill&& fill, std::uint16_t pad_to_ip_bytes = 0) {
  if (mbuf == nullptr) return SendResult::kNoBuffer;
  const std::uint16_t payload_bytes = fill(frame_payload(mbuf));
  finish_frame(mbuf, path, fields, payload_bytes, pad_to_ip_bytes, crypto);
  return transmit_one(port, queue, mbuf) ? SendResult::kSent : SendResult::kQueueFull;
}
// For a frame without payload.
inline std::uint16_t no_payload(std::byte*) { return 0; }

// The second step of receiving, after parse_frame(): a session with a key (`crypto`) takes
// only sealed frames (HELLO, HELLO_ACK and REFUSE excepted, which carry their own proof),
// checks their tag and counter, and decrypts them. A buffer someone else still holds (a
// sender's retransmission copy on an in-memory link) is never written: the plaintext goes
// to a private mbuf from `pool`, which replaces *mbuf. kNone when the frame may be used.
FrameDrop open_frame(rte_mbuf** mbuf, ReceivedFrame* frame, FrameCrypto* crypto, rte_mempool* pool);

// Where the payload of a frame this process built, or already parsed and opened (held for
// reordering), lies in its packet: read it with visit_bytes() or copy_bytes().
struct PayloadRange {
  std::uint32_t offset = 0;
  std::uint16_t bytes = 0;
};
PayloadRange held_payload(const rte_mbuf* mbuf);
// The kFrameRecordStart and kFrameRecordEnd flags of such a frame.
std::uint16_t held_record_bounds(const rte_mbuf* mbuf);

inline constexpr std::size_t frame_bytes_for_ip(std::size_t ip_bytes) { return kEthernetBytes + ip_bytes; }

}  // namespace pagewire::transport
