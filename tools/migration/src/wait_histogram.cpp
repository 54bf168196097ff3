#include "wait_histogram.hpp"

#include <algorithm>
#include <bit>

namespace pagewire::migration {

void WaitHistogram::add(std::uint64_t ns) {
  counts_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  std::uint64_t longest = longest_ns_.load(std::memory_order_relaxed);
  while (ns > longest && !longest_ns_.compare_exchange_weak(longest, ns, std::memory_order_relaxed)) {
  }
}

// Bucket b covers [floor(b), floor(b + 1)): the power of two below the value, then which
// eighth of the way to the next.
std::size_t WaitHistogram::bucket_of(std::uint64_t ns) {
  if (ns < kSubBuckets) return static_cast<std::size_t>(ns);
  const auto power = static_cast<std::size_t>(std::bit_width(ns) - 1);
  const auto eighth = static_cast<std::size_t>((ns >> (power - 3)) & (kSubBuckets - 1));
  return std::min(kBuckets - 1, (power - 2) * kSubBuckets + eighth);
}

double WaitHistogram::bucket_floor_ns(std::size_t bucket) {
  if (bucket < kSubBuckets) return static_cast<double>(bucket);
  const std::size_t power = bucket / kSubBuckets + 2;
  const std::size_t eighth = bucket % kSubBuckets;
  return static_cast<double>((std::uint64_t{kSubBuckets} + eighth) << (power - 3));
}

WaitSummary WaitHistogram::summarize(std::span<const WaitHistogram* const> histograms) {
  WaitSummary out;
  std::array<std::uint64_t, kBuckets> counts{};
  std::uint64_t longest = 0;
  for (const WaitHistogram* histogram : histograms) {
    for (std::size_t b = 0; b < kBuckets; ++b) counts[b] += histogram->counts_[b].load(std::memory_order_relaxed);
    longest = std::max(longest, histogram->longest_ns_.load(std::memory_order_relaxed));
  }
  for (std::uint64_t c : counts) out.count += c;
  if (out.count == 0) return out;
  const auto at = [&](double share) {
    const auto rank = static_cast<std::uint64_t>(share * static_cast<double>(out.count - 1));
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      seen += counts[b];
      if (seen > rank) return bucket_floor_ns(b) / 1000;
    }
    return bucket_floor_ns(kBuckets - 1) / 1000;
  };
  out.median_us = at(0.5);
  out.p99_us = at(0.99);
  out.max_us = static_cast<double>(longest) / 1000;
  return out;
}

}  // namespace pagewire::migration
