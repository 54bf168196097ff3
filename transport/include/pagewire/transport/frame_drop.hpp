// Why a received frame was dropped: one counter each, per stream (stream_counters.hpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace pagewire::transport {

// Why a received frame was dropped; each has a per-stream counter.
enum class FrameDrop : std::uint8_t {
  kNone = 0,
  kNotIpv4,        // another EtherType (ARP is handled before this)
  kNotForUs,       // destination MAC or IP is not ours
  kBadIpHeader,    // version, header length, total length, fragment
  kNotUdp,
  kWrongPort,      // not one of our streams' UDP ports
  kBadChecksum,    // IPv4 or UDP checksum
  kTruncated,      // lengths point past the frame
  kBadMagic,
  kBadVersion,
  kWrongSession,
  kUnknownType,
  kMultiSegment,   // a chain we do not take: headers or a control frame's payload split,
                   // segment lengths that do not add up, more than kMaxFrameSegments
  kSealMismatch,   // sealed in a session without a key, or unsealed in one with a key
  kBadTag,         // the seal does not match: forged, corrupted, or another key
  kReplayed,       // an authentic frame seen before (or too old to tell)
  kNoMbuf,         // no mbuf to decrypt a shared frame into: the sender will resend it
  kRefusedHello,   // a HELLO that does not fit (or fails authentication): answered REFUSE
  kQueryLimited,   // an outcome query within a millisecond of the last answered: unanswered
  kOutOfTurn,      // of a type this end takes, but not now: an answer after its exchange
                   // ended, a repeat of one dealt with, a FIN_ACK for an earlier FIN, a
                   // RESEND after the stream's end was acknowledged, a COMMIT before VERIFY
  kWrongDirection, // of a type only this end sends: looped back, or forged
};
inline constexpr int kFrameDropCount = 21;
std::string_view to_string(FrameDrop drop);  // words, for messages
std::string_view counter_name(FrameDrop drop);  // an identifier, for telemetry and JSON

}  // namespace pagewire::transport
