// `pagewire bench track`: what tracking a live workload's writes costs (write_tracker.hpp).
// A region of ordinary memory, populated; a writer thread writing 8 bytes at random places
// in it, the workload: 90 % of the writes into a hot set of `hot_fraction` of the pages (as
// the guest model's `hot` pattern), the rest anywhere. Measured, medians over `repeats`:
// - a look at a clean region (nothing written), per GiB;
// - a look after `dirty_share` of the pages were written, per dirty page beyond that;
// - the writer's writes per second untracked and tracked with a look every `interval_ms`
//   (as pre-copy rounds look), alternating, and their ratio.
#pragma once

#include <cstdint>
#include <iosfwd>

#include "pagewire/result.hpp"

namespace pagewire::bench {

struct TrackerBenchOptions {
  std::uint64_t region_bytes = 1ull << 30;
  int repeats = 5;
  double dirty_share = 0.05;
  double hot_fraction = 0.05;
  std::uint32_t interval_ms = 100;
  std::uint32_t run_ms = 1000;  // each timed writer run
};

struct TrackerBenchResult {
  double clean_look_ms_per_gib = 0;
  double look_us_per_dirty_page = 0;
  double untracked_writes_per_second = 0;
  double tracked_writes_per_second = 0;
  double tracked_vs_untracked = 0;  // median of the alternating pairs' ratios
  double pages_reported_per_look = 0;
};

Result<TrackerBenchResult> run_tracker_bench(const TrackerBenchOptions& options, std::ostream& progress);

}  // namespace pagewire::bench
