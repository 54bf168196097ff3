// The receiving side of pagecodec: page records in, destination pages written in place.
//
// One Decoder per stream core; not thread-safe. Records are hostile input: parse() checks
// the header against the region before any payload byte is used, and apply() never writes
// outside the pages the validated header names.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "pagewire/pagecodec/deflate.hpp"
#include "pagewire/pagecodec/page_map.hpp"
#include "pagewire/pagecodec/record.hpp"
#include "pagewire/result.hpp"

namespace pagewire::pagecodec {

struct DecoderCounters {
  std::array<std::uint64_t, kEncodingCount> pages{};   // applied, indexed by Encoding
  std::array<std::uint64_t, kEncodingCount> records{};
  std::array<std::uint64_t, kDecodeErrorCount> errors{};  // indexed by DecodeError
};

// Per-core counters, summed on read.
inline DecoderCounters& operator+=(DecoderCounters& total, const DecoderCounters& c) {
  for (std::size_t e = 0; e < total.pages.size(); ++e) {
    total.pages[e] += c.pages[e];
    total.records[e] += c.records[e];
  }
  for (std::size_t e = 0; e < total.errors.size(); ++e) total.errors[e] += c.errors[e];
  return total;
}

class Decoder {
 public:
  static Result<Decoder> create(std::uint32_t page_size, std::uint64_t region_pages);

  // Validates the record at the start of `bytes` (see parse_record); counts refusals.
  // The caller may then check generations before applying.
  ParsedRecord parse(std::span<const std::byte> bytes);
  ParsedRecord parse(std::span<const std::byte> header, std::span<const std::byte> following);

  // Writes the record's pages into `memory` (region_pages pages at least), block by block
  // where they lie in more than one. DELTA applies to the page as it is, which must hold the
  // record's base_generation content: that is the caller's ordering rule. A malformed DELTA
  // is refused before the page is touched; after kBadDeflate or kCrcMismatch the record's
  // pages hold unspecified bytes (never bytes outside them) and must be sent again in full.
  DecodeError apply(const RecordView& record, const PageMap& memory);
  // The record's pages decoded into `out`, back to back, for someone else to place
  // (postcopy puts them into a guest whose missing pages only a syscall may fill). ZERO, RAW
  // and DEFLATE: DELTA and COPY build on pages `out` does not hold (kUnknownEncoding). `out`
  // smaller than the pages: kBadPageCount. CRC checked as apply()'s.
  DecodeError apply_into(const RecordView& record, std::span<std::byte> out);

  // parse + apply for every record in `bytes`; stops at the first error. Returns the error
  // and, through records_applied, how many records went in.
  DecodeError decode_all(std::span<const std::byte> bytes, const PageMap& memory,
                         std::size_t* records_applied);

  std::uint32_t page_size() const { return page_size_; }
  std::uint64_t region_pages() const { return region_pages_; }
  const DecoderCounters& counters() const { return counters_; }

 private:
  Decoder(std::uint32_t page_size, std::uint64_t region_pages)
      : page_size_(page_size), region_pages_(region_pages) {}
  DecodeError refuse(DecodeError error);
  DecodeError write_contiguous(const RecordView& record, std::byte* target, const PageMap* memory);
  DecodeError write_scattered(const RecordView& record, const PageMap& memory);
  std::uint32_t crc_of_pages(const PageMap& memory, std::uint64_t first_page, std::uint32_t count) const;

  std::uint32_t page_size_;
  std::uint64_t region_pages_;
  DeflateDecompressor inflater_;
  DecoderCounters counters_;
};

}  // namespace pagewire::pagecodec
