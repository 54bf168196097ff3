// pagewire frames: Ethernet / IPv4 / UDP / FrameHeader / payload. docs/protocol.md
// ("Frames") is the normative description. Ethernet, IPv4 and UDP fields are big-endian
// (DPDK's rte_be types); FrameHeader and payload structs are little-endian (byte_order.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "pagewire/byte_order.hpp"
#include "pagewire/transport/commit_outcome.hpp"

namespace pagewire::transport {

inline constexpr std::uint32_t kFrameMagic = 0x52574750;  // "PGWR" on the wire
// 2: ACKs carry SACK blocks; 3: sealed frames; 4: CLOSE; 5: OUTCOME_QUERY/OUTCOME, ABORT in
// the handshake; 6: FrameHeader of 40 bytes (fragment fields of their own, reserved bytes),
// a HELLO of another version refused; 7: POSTCOPY, POSTCOPY_ACK, PAGE_REQUEST; 8: DATA frames
// say where records begin and end (kFrameRecordStart, kFrameRecordEnd).
inline constexpr std::uint8_t kProtocolVersion = 8;

enum class FrameType : std::uint8_t {
  kHello = 1,     // source -> destination: capabilities; starts a session
  kHelloAck = 2,  // destination -> source: its capabilities; session accepted
  kRefuse = 3,    // either way: session refused; payload is RefusePayload
  kProbe = 4,     // source -> destination: padded to a candidate IP size, DF set
  kProbeAck = 5,  // destination -> source: seq echoes the probe
  kData = 6,      // a chunk of the stream's record byte stream
  kAck = 7,       // seq = cumulative ack (next expected), sack, window
  kFin = 8,       // source: the stream's last frame was seq - 1
  kFinAck = 9,    // destination: everything up to the FIN was applied
  kVerify = 10,       // source: send me the digest of your region (seq = request id)
  kVerifyReply = 11,  // destination: VerifyPayload for request seq
  kCommit = 12,       // source: the digests matched; the destination's image is now the one
  kCommitAck = 13,    // destination: committed
  kAbort = 14,        // source: the migration failed; payload: reason text. Discard the image.
  kResend = 15,       // destination: these pages were refused (a DELTA for a base they do not
                      // hold): send them again in full. Payload: ResendPayload.
  kClose = 16,        // source: the answer to its COMMIT arrived; the destination may stop
                      // answering (it lingers until this, or until the source falls silent)
  kOutcomeQuery = 17, // anyone -> destination: did session `session` commit? Never sealed:
                      // the asker may hold no session keys. Payload: OutcomeQueryPayload.
  kOutcome = 18,      // destination: the answer, never sealed. Payload: OutcomePayload.
  kPostcopy = 19,     // source, stream 0: the guest is paused and every stream's frames are
                      // acknowledged; run it and ask for what it touches (seq = request id)
  kPostcopyAck = 20,  // destination: PostcopyAnswerPayload for request seq
  kPageRequest = 21,  // destination, on the stream that owns the pages: its guest touched
                      // these missing pages; send them first. Payload: ResendPayload.
};

// Which end takes a type (REFUSE and ABORT go both ways): one of the other end's types
// arriving is a frame looped back, or forged.
constexpr bool taken_by_source(FrameType type) {
  switch (type) {
    case FrameType::kHelloAck: case FrameType::kRefuse: case FrameType::kProbeAck: case FrameType::kAck:
    case FrameType::kFinAck: case FrameType::kVerifyReply: case FrameType::kCommitAck: case FrameType::kAbort:
    case FrameType::kResend: case FrameType::kOutcome: case FrameType::kPostcopyAck: case FrameType::kPageRequest:
      return true;
    default:
      return false;
  }
}
constexpr bool taken_by_destination(FrameType type) {
  return !taken_by_source(type) || type == FrameType::kRefuse || type == FrameType::kAbort;
}
inline constexpr std::uint8_t kLastFrameType = 21;
// Sequence numbers wrap at 2^32: a before b when seq_diff(a, b) < 0, as TCP compares them.
inline constexpr std::int32_t seq_diff(std::uint32_t a, std::uint32_t b) { return static_cast<std::int32_t>(a - b); }

// The seq of a keepalive PROBE (an idle source's sign of life, not padded); path probes
// count from 1.
inline constexpr std::uint32_t kKeepaliveProbeSeq = 0;

struct [[gnu::packed]] FrameHeader {
  // The prefix every version keeps where it is, so that a frame of another version can be
  // told apart and answered (a HELLO refused, a REFUSE understood).
  le32 magic;
  std::uint8_t version;
  std::uint8_t type;      // FrameType
  le16 stream;            // stream index; control frames use 0
  le32 session;           // chosen by the source in HELLO; other sessions' frames are dropped
  // This version's.
  le32 seq;               // kData/kProbe/kFin: sequence; kAck: next expected sequence
  le64 sack;              // kAck: bit i set = frame seq + 1 + i was received
  le32 window;            // kAck: frames the receiver can hold beyond seq
  le16 payload_bytes;     // bytes after this header (a SealTrailer, if any, follows them)
  le16 flags;             // kFrameSealed, kFrameFragment; other bits 0
  le16 fragment_offset;   // kFrameFragment: where this part's bytes go in frame seq's payload
  le16 fragment_total;    // kFrameFragment: the length of frame seq's whole payload
  le32 reserved;          // 0; a frame with any bit set is dropped (a later version bumps `version`)
};
static_assert(sizeof(FrameHeader) == 40);
inline constexpr std::size_t kVersionPrefixBytes = 12;  // magic, version, type, stream, session
static_assert(offsetof(FrameHeader, seq) == kVersionPrefixBytes);
static_assert(offsetof(FrameHeader, payload_bytes) == 28);
static_assert(offsetof(FrameHeader, fragment_offset) == 32);

// FrameHeader.flags: the frame is authenticated (and, if the session encrypts, encrypted)
// with AES-256-GCM under the session key of its direction: the FrameHeader is the
// additional data, the payload the text, and a SealTrailer follows the payload.
inline constexpr std::uint16_t kFrameSealed = 1;
// FrameHeader.flags on DATA: this frame carries part of frame `seq`'s payload, cut because
// the path's MTU fell below the size the frame was built at (black-hole detection,
// docs/protocol.md). `fragment_offset` is the part's byte offset, a multiple of
// kFragmentUnit; `fragment_total` the whole payload's length. The receiver rebuilds frame
// `seq` from its parts.
inline constexpr std::uint16_t kFrameFragment = 2;
inline constexpr std::uint32_t kFragmentUnit = 1024;
// FrameHeader.flags on DATA: the payload begins at a record boundary (no record runs in
// from the frame before), and ends at one (none runs on into the next). A run of frames
// from one that starts records to one that ends them is whole records, which a receiver
// may apply as they arrive, ahead of a hole before them (docs/protocol.md, "Streams and
// reliability").
inline constexpr std::uint16_t kFrameRecordStart = 4;
inline constexpr std::uint16_t kFrameRecordEnd = 8;
inline constexpr std::uint16_t kFrameRecordBounds = kFrameRecordStart | kFrameRecordEnd;

struct [[gnu::packed]] SealTrailer {
  le64 counter;           // the sender's frame counter on this stream: the nonce is
                          // le32 stream || le64 counter, never repeated under one key
  std::uint8_t tag[16];   // GCM tag over header and payload
};
static_assert(sizeof(SealTrailer) == 24);

inline constexpr std::size_t kEthernetBytes = 14;
inline constexpr std::size_t kIpv4Bytes = 20;
inline constexpr std::size_t kUdpBytes = 8;
// IP packet bytes that are not stream payload: what a path MTU must also carry.
inline constexpr std::size_t kIpOverhead = kIpv4Bytes + kUdpBytes + sizeof(FrameHeader);
inline constexpr std::uint16_t kMinPathMtu = 1280;  // IPv6's minimum; probing starts here
inline constexpr std::uint16_t kMaxPathMtu = 9216;

inline constexpr std::size_t payload_for_mtu(std::uint16_t mtu, bool sealed = false) {
  return mtu - kIpOverhead - (sealed ? sizeof(SealTrailer) : 0);
}

// Capabilities exchanged in HELLO / HELLO_ACK.
struct [[gnu::packed]] HelloPayload {
  le32 version;           // kProtocolVersion of the sender
  le32 page_size;
  le64 region_pages;      // source: pages it will send; destination: pages it can hold
  le16 streams;
  le16 mtu;               // largest IP packet this side's port accepts
  le32 encodings;         // bit (1 << Encoding) for each pagecodec encoding it decodes/sends
  le32 max_record_bytes;  // source: its largest record; destination: the largest it accepts
  le32 security;          // kSecurity* bits: what the source asks for, the destination grants
};
static_assert(sizeof(HelloPayload) == 32);

// HelloPayload.security. Authenticated: a HelloAuth follows the HelloPayload, and every
// frame after HELLO_ACK is sealed. Encrypted: sealed frames' payloads are encrypted too.
inline constexpr std::uint32_t kSecurityAuthenticated = 1;
inline constexpr std::uint32_t kSecurityEncrypted = 2;

// Proof of the pre-shared key: HMAC-SHA256 over the handshake so far (docs/protocol.md,
// "Authentication"), and this side's fresh nonce, from which with the peer's the session
// keys are derived.
struct [[gnu::packed]] HelloAuth {
  std::uint8_t nonce[32];
  std::uint8_t mac[32];
};
static_assert(sizeof(HelloAuth) == 64);

enum class RefuseReason : std::uint16_t {
  kVersion = 1,
  kPageSize = 2,
  kRegionTooSmall = 3,
  kStreams = 4,
  kEncodings = 5,
  kBusy = 6,
  kMtu = 7,
  kAuthentication = 8,  // no key, or a different one
  kEncryption = 9,      // the destination requires an encrypted stream
};

struct [[gnu::packed]] RefusePayload {
  le16 reason;            // RefuseReason
  char message[126];      // NUL-terminated, human readable: what differs
};
static_assert(sizeof(RefusePayload) == 128);

// Asks the destination that ran session `FrameHeader::session` how it ended: from a source
// whose COMMIT went unanswered, on the same connection or, after a restart, a new one.
// `nonce` is fresh per asker; `mac` is HMAC-SHA256 of the pre-shared key over the label
// "pagewire outcome query", the session (le32) and the nonce; zeros without a key.
struct [[gnu::packed]] OutcomeQueryPayload {
  std::uint8_t nonce[32];
  std::uint8_t mac[32];
};
static_assert(sizeof(OutcomeQueryPayload) == 64);


// The answer: the outcome, the asker's nonce echoed, and HMAC-SHA256 of the key over
// "pagewire outcome", the session (le32), the nonce and the outcome byte (zeros without a
// key), so that only the destination can say "committed" to a keyed source.
struct [[gnu::packed]] OutcomePayload {
  std::uint8_t outcome;  // CommitOutcome
  std::uint8_t reserved[7];
  std::uint8_t nonce[32];
  std::uint8_t mac[32];
};
static_assert(sizeof(OutcomePayload) == 72);

// The destination's digest of its whole region (pages + device state), computed by the
// caller (pagewire uses XXH3-128); opaque to the transport.
struct [[gnu::packed]] VerifyPayload {
  std::uint8_t digest[16];
  le64 region_bytes;
  le64 reserved;
};
static_assert(sizeof(VerifyPayload) == 32);

// ACK payload: up to kAckSackBlocks blocks of 64 frames each, beyond the header's SACK
// (which covers the 64 frames after the cumulative ACK). The receiver reports the blocks it
// received into most recently, so on a long path a hole far past the cumulative ACK, and
// everything that arrived around it, is known within one round trip.
struct [[gnu::packed]] SackBlock {
  le32 base;      // sequence of bit 0; a multiple of 64
  le32 reserved;  // 0
  le64 received;  // bit i set = frame base + i was received
};
static_assert(sizeof(SackBlock) == 16);
inline constexpr std::size_t kAckSackBlocks = 4;

// Followed by `count` le64 page indices (the region's, not the stream's).
struct [[gnu::packed]] ResendPayload {
  le16 count;
  le16 reserved;  // 0
  le32 reserved2;  // 0
};
static_assert(sizeof(ResendPayload) == 8);

// The destination's answer to POSTCOPY: its guest runs there now (kPostcopyRunning), or it
// could not take it (kPostcopyRefused, with why: the source resumes its own).
inline constexpr std::uint8_t kPostcopyRunning = 1;
inline constexpr std::uint8_t kPostcopyRefused = 2;
struct [[gnu::packed]] PostcopyAnswerPayload {
  std::uint8_t answer;
  char reason[127];  // NUL-terminated when refused
};
static_assert(sizeof(PostcopyAnswerPayload) == 128);

struct [[gnu::packed]] ProbeAckPayload {
  le16 received_ip_bytes;
  le16 reserved;
};
static_assert(sizeof(ProbeAckPayload) == 4);

}  // namespace pagewire::transport
