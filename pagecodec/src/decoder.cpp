#include "pagewire/pagecodec/decoder.hpp"

#include <algorithm>
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

DecodeError Decoder::apply(const RecordView& record, const PageMap& memory) {
  // parse_record checked the record against region_pages_; memory must hold as many.
  if (memory.pages() < region_pages_) return refuse(DecodeError::kPageOutOfRange);
  const DecodeError error = memory.run_from(record.first_page) >= record.page_count
                                ? write_contiguous(record, memory.page(record.first_page), &memory)
                                : write_scattered(record, memory);
  if (error != DecodeError::kNone) return refuse(error);
  if (record.has_crc && crc_of_pages(memory, record.first_page, record.page_count) != record.crc32c) {
    return refuse(DecodeError::kCrcMismatch);
  }
  const auto index = static_cast<std::size_t>(record.encoding);
  counters_.pages[index] += record.page_count;
  counters_.records[index] += 1;
  return DecodeError::kNone;
}

DecodeError Decoder::apply_into(const RecordView& record, std::span<std::byte> out) {
  if (record.encoding == Encoding::kDelta || record.encoding == Encoding::kCopy) {
    return refuse(DecodeError::kUnknownEncoding);
  }
  if (out.size() < std::size_t{record.page_count} * page_size_) return refuse(DecodeError::kBadPageCount);
  if (const DecodeError error = write_contiguous(record, out.data(), nullptr); error != DecodeError::kNone) {
    return refuse(error);
  }
  if (record.has_crc && crc32c(out.first(std::size_t{record.page_count} * page_size_), kCrc32cSeed) != record.crc32c) {
    return refuse(DecodeError::kCrcMismatch);
  }
  const auto index = static_cast<std::size_t>(record.encoding);
  counters_.pages[index] += record.page_count;
  counters_.records[index] += 1;
  return DecodeError::kNone;
}

// `memory` is null only for apply_into(), which takes no COPY.
DecodeError Decoder::write_contiguous(const RecordView& record, std::byte* target, const PageMap* memory) {
  const std::size_t bytes = std::size_t{record.page_count} * page_size_;
  switch (record.encoding) {
    case Encoding::kZero:
      std::memset(target, 0, bytes);
      break;
    case Encoding::kRaw:
      std::memcpy(target, record.payload.data(), bytes);
      break;
    case Encoding::kDelta:
      if (!xbzrle::validate(record.payload, page_size_)) return DecodeError::kBadDelta;
      xbzrle::apply_validated(record.payload, target);
      break;
    case Encoding::kDeflate:
      if (!inflater_.decompress_exact(record.payload, {target, bytes})) return DecodeError::kBadDeflate;
      break;
    case Encoding::kCopy:  // parse_record checked: another page, inside the region
      if (memory == nullptr) return DecodeError::kUnknownEncoding;
      std::memcpy(target, memory->page(record.copy_source), bytes);
      break;
  }
  return DecodeError::kNone;
}

// A record whose pages lie in more than one of this end's blocks (the sender's blocks may
// be laid out otherwise): written block piece by block piece. DELTA and COPY carry one page,
// so never come here.
DecodeError Decoder::write_scattered(const RecordView& record, const PageMap& memory) {
  std::size_t payload_offset = 0;
  if (record.encoding == Encoding::kDeflate) inflater_.start(record.payload);
  for (std::uint64_t page = record.first_page, left = record.page_count; left > 0;) {
    const std::uint64_t pages = std::min(left, memory.run_from(page));
    const std::span<std::byte> piece{memory.page(page), pages * page_size_};
    switch (record.encoding) {
      case Encoding::kZero:
        std::memset(piece.data(), 0, piece.size());
        break;
      case Encoding::kRaw:
        std::memcpy(piece.data(), record.payload.data() + payload_offset, piece.size());
        payload_offset += piece.size();
        break;
      case Encoding::kDeflate:
        if (!inflater_.inflate_into(piece)) return DecodeError::kBadDeflate;
        break;
      case Encoding::kDelta:
      case Encoding::kCopy:
        return DecodeError::kBadPageCount;
    }
    page += pages;
    left -= pages;
  }
  if (record.encoding == Encoding::kDeflate && !inflater_.finished()) return DecodeError::kBadDeflate;
  return DecodeError::kNone;
}

std::uint32_t Decoder::crc_of_pages(const PageMap& memory, std::uint64_t first_page, std::uint32_t count) const {
  std::uint32_t crc = kCrc32cSeed;
  for (std::uint64_t page = first_page, left = count; left > 0;) {
    const std::uint64_t pages = std::min<std::uint64_t>(left, memory.run_from(page));
    crc = crc32c({memory.page(page), pages * page_size_}, crc);
    page += pages;
    left -= pages;
  }
  return crc;
}

DecodeError Decoder::decode_all(std::span<const std::byte> bytes, const PageMap& memory,
                                std::size_t* records_applied) {
  *records_applied = 0;
  while (!bytes.empty()) {
    const ParsedRecord parsed = parse(bytes);
    if (parsed.error != DecodeError::kNone) return parsed.error;
    if (const DecodeError error = apply(parsed.view, memory); error != DecodeError::kNone) {
      return error;
    }
    ++*records_applied;
    bytes = bytes.subspan(parsed.view.record_bytes);
  }
  return DecodeError::kNone;
}

}  // namespace pagewire::pagecodec
