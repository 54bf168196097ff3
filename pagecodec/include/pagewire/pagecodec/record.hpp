// The page record: pagecodec's unit of output and the payload unit of every transport frame.
// docs/protocol.md ("Page records") is the normative description; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "pagewire/byte_order.hpp"

namespace pagewire::pagecodec {

enum class Encoding : std::uint8_t {
  kZero = 1,     // page_count pages of zeros; no payload
  kRaw = 2,      // page_count pages verbatim
  kDelta = 3,    // one page as XBZRLE runs against the page's base_generation content
  kDeflate = 4,  // page_count pages as one raw-deflate stream (ISA-L igzip)
  kCopy = 5,     // one page equal to another page of the region, as the receiver holds it at
                 // base_generation; payload: that page's index (le64)
};
inline constexpr int kEncodingCount = 6;  // array size for per-encoding counters, index = value

// DELTA and COPY build on what the receiver holds of a page at a named generation, so they
// must be applied in the order they were sent; the others may be applied in any order, the
// generation rule alone deciding (an older copy never overwrites a newer one).
constexpr bool builds_on_held(Encoding encoding) { return encoding == Encoding::kDelta || encoding == Encoding::kCopy; }
inline constexpr std::size_t kCopyPayloadBytes = 8;

std::string_view to_string(Encoding encoding);

inline constexpr std::uint8_t kRecordFlagCrc = 0x01;  // crc32c covers the decoded bytes
inline constexpr std::uint8_t kRecordKnownFlags = kRecordFlagCrc;

// Wire header of one record, followed by payload_bytes of payload.
struct [[gnu::packed]] RecordHeader {
  std::uint8_t encoding;  // Encoding
  std::uint8_t flags;     // kRecordFlag*; unknown bits are refused
  le16 page_count;        // contiguous pages from first_page; 1 for kDelta and kCopy
  le32 payload_bytes;
  le64 first_page;        // page index within the destination region
  le32 generation;        // pre-copy round that produced this content (opaque to pagecodec)
  le32 base_generation;   // kDelta: generation of the content the delta applies to; kCopy:
                          // generation of the source page's content; else 0
  le32 crc32c;            // crc32_iscsi(decoded bytes, seed 0) when kRecordFlagCrc; else 0
  le32 reserved;          // sent as 0, refused otherwise (room for a future field)
};
static_assert(sizeof(RecordHeader) == 32);
static_assert(offsetof(RecordHeader, payload_bytes) == 4);
static_assert(offsetof(RecordHeader, first_page) == 8);
static_assert(offsetof(RecordHeader, crc32c) == 24);

inline constexpr std::size_t kRecordHeaderBytes = sizeof(RecordHeader);
inline constexpr std::uint32_t kMaxPagesPerRecord = 0xffff;

inline constexpr std::uint32_t kMinPageSize = 4096;
inline constexpr std::uint32_t kMaxPageSize = 65536;
constexpr bool is_valid_page_size(std::uint32_t page_size) {
  return page_size >= kMinPageSize && page_size <= kMaxPageSize &&
         (page_size & (page_size - 1)) == 0;
}

// Why a record was refused. Every value has a counter on the decoding side.
enum class DecodeError : std::uint8_t {
  kNone = 0,
  kTruncated,         // fewer bytes than the header or its payload_bytes
  kUnknownEncoding,
  kUnknownFlags,      // flag bits or reserved field this version does not know
  kBadPageCount,      // 0 pages, or more than one for kDelta or kCopy
  kPageOutOfRange,    // first_page + page_count (or a kCopy's source) beyond the region
  kBadPayloadLength,  // payload length impossible for the encoding (e.g. kRaw != pages*size)
  kBadDelta,          // malformed run list: bad ULEB128, run past the page end, empty run
  kBadDeflate,        // inflate failed or produced a different number of bytes
  kCrcMismatch,       // decoded bytes differ from what the sender encoded
};
inline constexpr int kDecodeErrorCount = 10;

std::string_view to_string(DecodeError error);

// A record whose header has been validated against the destination's geometry.
// Its payload is not inspected until it is applied.
struct RecordView {
  Encoding encoding;
  std::uint32_t page_count;
  std::uint64_t first_page;
  std::uint32_t generation;
  std::uint32_t base_generation;
  std::uint64_t copy_source;  // kCopy: the page to copy (in the region, not first_page); else 0
  bool has_crc;
  std::uint32_t crc32c;
  std::span<const std::byte> payload;
  std::size_t record_bytes;  // header + payload: where the next record starts
};

struct ParsedRecord {
  DecodeError error;
  RecordView view;  // meaningful only when error == kNone
};

// Validates the header at the start of `bytes`: every length and page index is checked
// against `bytes.size()` and the region before anything is dereferenced past the header.
// Never throws, never allocates.
ParsedRecord parse_record(std::span<const std::byte> bytes, std::uint32_t page_size,
                          std::uint64_t region_pages);
// The same for a header that arrived apart from its payload (a segment chain): the payload
// is taken from the start of `following`.
ParsedRecord parse_record(std::span<const std::byte> header, std::span<const std::byte> following,
                          std::uint32_t page_size, std::uint64_t region_pages);

}  // namespace pagewire::pagecodec
