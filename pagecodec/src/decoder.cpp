#include "pagewire/pagecodec/decoder.hpp"

#include <cstring>
#include <string>

#include "crc.hpp"
#include "pagewire/pagecodec/xbzrle.hpp"

namespace pagewire::pagecodec {

Result<Decoder> Decoder::create(std::uint32_t page_size, std::uint64_t region_pages) {
  if (!is_valid_page_size(page_size)) {
    return make_error("page size " + std::to_string(page_size) +
                      ": expected a power of two from 4096 to 65536");
  }
  if (region_pages == 0) return make_error("region of 0 pages: expected at least one");
  return Decoder(page_size, region_pages);
}

DecodeError Decoder::refuse(DecodeError error) {
  ++counters_.errors[static_cast<std::size_t>(error)];
  return error;
}

ParsedRecord Decoder::parse(std::span<const std::byte> bytes) {
  ParsedRecord parsed = parse_record(bytes, page_size_, region_pages_);
  if (parsed.error != DecodeError::kNone) refuse(parsed.error);
  return parsed;
}

ParsedRecord Decoder::parse(std::span<const std::byte> header, std::span<const std::byte> following) {
  ParsedRecord parsed = parse_record(header, following, page_size_, region_pages_);
  if (parsed.error != DecodeError::kNone) refuse(parsed.error);
  return parsed;
}

DecodeError Decoder::apply(const RecordView& record, std::byte* region) {
  const std::size_t bytes = std::size_t{record.page_count} * page_size_;
  std::byte* target = region + record.first_page * page_size_;
  switch (record.encoding) {
    case Encoding::kZero:
      std::memset(target, 0, bytes);
      break;
    case Encoding::kRaw:
      std::memcpy(target, record.payload.data(), bytes);
      break;
    case Encoding::kDelta:
      if (!xbzrle::validate(record.payload, page_size_)) return refuse(DecodeError::kBadDelta);
      xbzrle::apply_validated(record.payload, target);
      break;
    case Encoding::kDeflate:
      if (!inflater_.decompress_exact(record.payload, {target, bytes})) {
        return refuse(DecodeError::kBadDeflate);
      }
      break;
    case Encoding::kCopy:  // parse_record checked: another page, inside the region
      std::memcpy(target, region + record.copy_source * page_size_, bytes);
      break;
  }
  if (record.has_crc && crc32c({target, bytes}) != record.crc32c) {
    return refuse(DecodeError::kCrcMismatch);
  }
  const auto index = static_cast<std::size_t>(record.encoding);
  counters_.pages[index] += record.page_count;
  counters_.records[index] += 1;
  return DecodeError::kNone;
}

DecodeError Decoder::decode_all(std::span<const std::byte> bytes, std::byte* region,
                                std::size_t* records_applied) {
  *records_applied = 0;
  while (!bytes.empty()) {
    const ParsedRecord parsed = parse(bytes);
    if (parsed.error != DecodeError::kNone) return parsed.error;
    if (const DecodeError error = apply(parsed.view, region); error != DecodeError::kNone) {
      return error;
    }
    ++*records_applied;
    bytes = bytes.subspan(parsed.view.record_bytes);
  }
  return DecodeError::kNone;
}

}  // namespace pagewire::pagecodec
