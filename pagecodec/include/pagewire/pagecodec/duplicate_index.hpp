// Which page this stream already sent with a given content, so that a page with the same
// bytes can go as a COPY record ("same as page P, as you hold it at generation g") instead of
// its 4 KiB. One index per stream core (its encoder's); not thread-safe.
//
// Fingerprints find candidates only: the encoder compares the two pages byte for byte before
// it sends a COPY, so a fingerprint collision can never produce a wrong page. That lets the
// fingerprint be cheap: XXH3-64 of four 64-byte samples spread over the page, not of all of
// it (a full hash per page would cost about half a memcpy of it, far more than the ~5 % of
// the source's per-page work this is allowed). Pages that share the samples but differ
// elsewhere cost a comparison and are then sent as they would have been.
//
// Bounded memory: a direct-mapped table of 2^k slots (24 bytes each); a newer page with the
// same slot replaces the older. Losing an entry only loses a saving.
//
// Looking costs about 0.2 us a page here (the fingerprint, a cache miss in the table): a
// third of a 4 KiB memcpy. Where under 1 % of the pages looked at turn out to be duplicates,
// the index looks at one page in kSparseStride only, until a window of looks finds them
// again: on data without duplicates the search costs a few percent, on data with them it
// runs on every page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "pagewire/result.hpp"

namespace pagewire::pagecodec {

struct DuplicateCounters {
  std::uint64_t candidates = 0;       // fingerprint matches looked at
  std::uint64_t confirmed = 0;        // ...that were byte-for-byte equal: sent as COPY
  std::uint64_t differed = 0;         // ...whose bytes differed (a sample collision)
  std::uint64_t pending = 0;          // ...whose source page is still to be re-sent this round
  std::uint64_t dependencies_full = 0;  // COPYs not sent: this round's dependency list was full
  std::uint64_t looked = 0;             // pages fingerprinted (all, or one in 16 where few are duplicates)
};

inline DuplicateCounters& operator+=(DuplicateCounters& total, const DuplicateCounters& c) {
  total.candidates += c.candidates;
  total.confirmed += c.confirmed;
  total.differed += c.differed;
  total.pending += c.pending;
  total.dependencies_full += c.dependencies_full;
  total.looked += c.looked;
  return total;
}

class DuplicateIndex {
 public:
  struct Entry {
    std::uint64_t fingerprint = 0;
    std::uint64_t page = UINT64_MAX;  // UINT64_MAX: empty
    std::uint32_t generation = 0;     // the generation the receiver holds the page at
  };

  // `slots` rounded down to a power of two; 0 disables the index.
  static Result<DuplicateIndex> create(std::size_t slots);

  // The cheap fingerprint of a page of `page_size` bytes.
  static std::uint64_t fingerprint(const std::byte* page, std::uint32_t page_size);

  static constexpr std::uint32_t kSparseStride = 16;
  static constexpr std::uint32_t kWindowLooks = 1024;

  bool enabled() const { return mask_ != SIZE_MAX; }
  // Whether to look at the next page (see above).
  bool should_look() {
    if (!enabled()) return false;
    return dense_ || ++skipped_ % kSparseStride == 0;
  }
  // A page looked at was sent as a COPY (or not).
  void looked(bool copied);
  bool dense() const { return dense_; }
  // The entry whose fingerprint equals `fingerprint`, or null.
  const Entry* find(std::uint64_t fingerprint) const;
  // `page` was just sent with content of `fingerprint`, to be held at `generation`.
  void record_sent(std::uint64_t fingerprint, std::uint64_t page, std::uint32_t generation);

 private:
  DuplicateIndex(std::unique_ptr<Entry[]> slots, std::size_t mask) : slots_(std::move(slots)), mask_(mask) {}
  std::unique_ptr<Entry[]> slots_;
  std::size_t mask_ = SIZE_MAX;
  bool dense_ = true;
  std::uint32_t skipped_ = 0;
  std::uint32_t window_looks_ = 0, window_copies_ = 0;
};

}  // namespace pagewire::pagecodec
