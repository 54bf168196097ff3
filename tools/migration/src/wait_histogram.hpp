// How long waits took (postcopy's remote faults), counted from any thread without a lock:
// buckets of an eighth of a power of two of nanoseconds, so percentiles are within 1/8 of
// the true value, and histograms of several sources (a guest's RAM blocks) add up.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace pagewire::migration {

struct WaitSummary {
  std::uint64_t count = 0;
  double median_us = 0;
  double p99_us = 0;
  double max_us = 0;
};

class WaitHistogram {
 public:
  void add(std::uint64_t ns);  // any thread
  // Of every histogram together.
  static WaitSummary summarize(std::span<const WaitHistogram* const> histograms);
  WaitSummary summary() const {
    const WaitHistogram* self = this;
    return summarize(std::span(&self, 1));
  }

 private:
  static constexpr std::size_t kSubBuckets = 8;
  static constexpr std::size_t kBuckets = 64 * kSubBuckets;
  static std::size_t bucket_of(std::uint64_t ns);
  static double bucket_floor_ns(std::size_t bucket);

  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> longest_ns_{0};
};

}  // namespace pagewire::migration
