#include "pagewire/pagecodec/record.hpp"

#include <cstring>

namespace pagewire::pagecodec {

std::string_view to_string(Encoding encoding) {
  switch (encoding) {
    case Encoding::kZero: return "zero";
    case Encoding::kRaw: return "raw";
    case Encoding::kDelta: return "delta";
    case Encoding::kDeflate: return "deflate";
    case Encoding::kCopy: return "copy";
  }
  return "unknown";
}

std::string_view to_string(DecodeError error) {
  switch (error) {
    case DecodeError::kNone: return "ok";
    case DecodeError::kTruncated: return "record truncated";
    case DecodeError::kUnknownEncoding: return "unknown encoding";
    case DecodeError::kUnknownFlags: return "unknown flags or reserved bits set";
    case DecodeError::kBadPageCount: return "bad page count";
    case DecodeError::kPageOutOfRange: return "page index outside the destination region";
    case DecodeError::kBadPayloadLength: return "payload length impossible for the encoding";
    case DecodeError::kBadDelta: return "malformed delta";
    case DecodeError::kBadDeflate: return "malformed deflate stream";
    case DecodeError::kCrcMismatch: return "CRC mismatch";
  }
  return "unknown error";
}

namespace {

// A legal delta is at most 3 bytes of lengths per changed byte; anything longer than twice
// the page cannot be one.
constexpr std::uint64_t kMaxDeltaPayloadPages = 2;

ParsedRecord refused(DecodeError error) { return ParsedRecord{error, {}}; }

}  // namespace

ParsedRecord parse_record(std::span<const std::byte> bytes, std::uint32_t page_size,
                          std::uint64_t region_pages) {
  if (bytes.size() < kRecordHeaderBytes) return refused(DecodeError::kTruncated);
  return parse_record(bytes.first(kRecordHeaderBytes), bytes.subspan(kRecordHeaderBytes), page_size, region_pages);
}

ParsedRecord parse_record(std::span<const std::byte> header_bytes, std::span<const std::byte> following,
                          std::uint32_t page_size, std::uint64_t region_pages) {
  if (header_bytes.size() < kRecordHeaderBytes) return refused(DecodeError::kTruncated);
  RecordHeader header;
  std::memcpy(&header, header_bytes.data(), sizeof header);

  const auto encoding = static_cast<Encoding>(header.encoding);
  if (encoding != Encoding::kZero && encoding != Encoding::kRaw && encoding != Encoding::kDelta &&
      encoding != Encoding::kDeflate && encoding != Encoding::kCopy) {
    return refused(DecodeError::kUnknownEncoding);
  }
  if ((header.flags & ~kRecordKnownFlags) != 0 || header.reserved.get() != 0) {
    return refused(DecodeError::kUnknownFlags);
  }
  const std::uint32_t page_count = header.page_count.get();
  const bool single_page = encoding == Encoding::kDelta || encoding == Encoding::kCopy;
  if (page_count == 0 || (single_page && page_count != 1)) {
    return refused(DecodeError::kBadPageCount);
  }
  const std::uint64_t first_page = header.first_page.get();
  if (first_page >= region_pages || page_count > region_pages - first_page) {
    return refused(DecodeError::kPageOutOfRange);
  }
  const std::uint64_t payload_bytes = header.payload_bytes.get();
  if (payload_bytes > following.size()) return refused(DecodeError::kTruncated);

  const std::uint64_t decoded_bytes = std::uint64_t{page_count} * page_size;
  bool length_ok = false;
  switch (encoding) {
    case Encoding::kZero: length_ok = payload_bytes == 0; break;
    case Encoding::kRaw: length_ok = payload_bytes == decoded_bytes; break;
    case Encoding::kDelta: length_ok = payload_bytes <= kMaxDeltaPayloadPages * page_size; break;
    case Encoding::kDeflate: length_ok = payload_bytes > 0 && payload_bytes <= decoded_bytes; break;
    case Encoding::kCopy: length_ok = payload_bytes == kCopyPayloadBytes; break;
  }
  if (!length_ok) return refused(DecodeError::kBadPayloadLength);
  std::uint64_t copy_source = 0;
  if (encoding == Encoding::kCopy) {
    le64 source;
    std::memcpy(&source, following.data(), sizeof source);
    copy_source = source.get();
    if (copy_source >= region_pages || copy_source == first_page) return refused(DecodeError::kPageOutOfRange);
  }

  return ParsedRecord{
      DecodeError::kNone,
      RecordView{
          .encoding = encoding,
          .page_count = page_count,
          .first_page = first_page,
          .generation = header.generation.get(),
          .base_generation = header.base_generation.get(),
          .copy_source = copy_source,
          .has_crc = (header.flags & kRecordFlagCrc) != 0,
          .crc32c = header.crc32c.get(),
          .payload = following.first(payload_bytes),
          .record_bytes = kRecordHeaderBytes + payload_bytes,
      }};
}

}  // namespace pagewire::pagecodec
