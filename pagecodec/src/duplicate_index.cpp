#include "pagewire/pagecodec/duplicate_index.hpp"

#include <xxhash.h>

#include <bit>
#include <cstring>

namespace pagewire::pagecodec {

namespace {

constexpr std::size_t kSampleBytes = 64;
constexpr std::size_t kSamples = 4;

}  // namespace

Result<DuplicateIndex> DuplicateIndex::create(std::size_t slots) {
  if (slots == 0) return DuplicateIndex(nullptr, SIZE_MAX);
  const std::size_t count = std::bit_floor(slots);
  return DuplicateIndex(std::make_unique<Entry[]>(count), count - 1);
}

std::uint64_t DuplicateIndex::fingerprint(const std::byte* page, std::uint32_t page_size) {
  // The samples start a quarter page apart; the last one ends the page, where headers and
  // stamps of otherwise equal pages often sit.
  std::byte sample[kSamples * kSampleBytes];
  const std::size_t step = page_size / kSamples;
  for (std::size_t k = 0; k + 1 < kSamples; ++k) std::memcpy(sample + k * kSampleBytes, page + k * step, kSampleBytes);
  std::memcpy(sample + (kSamples - 1) * kSampleBytes, page + page_size - kSampleBytes, kSampleBytes);
  return XXH3_64bits(sample, sizeof sample);
}

const DuplicateIndex::Entry* DuplicateIndex::find(std::uint64_t fingerprint) const {
  if (!enabled()) return nullptr;
  const Entry& entry = slots_[fingerprint & mask_];
  return entry.page != UINT64_MAX && entry.fingerprint == fingerprint ? &entry : nullptr;
}

void DuplicateIndex::looked(bool copied) {
  ++window_looks_;
  window_copies_ += copied ? 1 : 0;
  if (window_looks_ < kWindowLooks) return;
  // At least 1 % duplicates. Sparse, only one page in kSparseStride went into the table, so a
  // duplicate finds its twin there that much less often: scale the count back up.
  const std::uint64_t scale = dense_ ? 1 : kSparseStride;
  dense_ = std::uint64_t{window_copies_} * scale * 100 >= window_looks_;
  window_looks_ = window_copies_ = 0;
}

void DuplicateIndex::record_sent(std::uint64_t fingerprint, std::uint64_t page, std::uint32_t generation) {
  if (!enabled()) return;
  slots_[fingerprint & mask_] = Entry{fingerprint, page, generation};
}

}  // namespace pagewire::pagecodec
