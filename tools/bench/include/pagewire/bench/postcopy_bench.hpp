// `pagewire bench postcopy`: postcopy's remote faults on a path of a chosen delay and rate,
// in one process: a net_ring pair with the impairing middlebox between its ends (75 ms each
// way: a 150 ms round trip), the source's guest model paused at once (--postcopy now), and a
// guest model on the destination writing from the switch on. Each repeat reports how long
// the guest was paused, how long the pages took, and the waits of its remote faults.
// Needs an initialised EAL with two lcores.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::bench {

struct PostcopyBenchOptions {
  std::uint64_t size_mib = 256;
  double delay_ms = 75;         // one way
  double rate_gbps = 1;         // the path's bottleneck; 0: none
  double dirty_rate = 20000;    // pages per second the destination's guest writes (uniform)
  int repeats = 3;
};

struct PostcopyBenchRun {
  double pause_ms = 0;   // the source's pause until the guest ran on the destination
  double pages_ms = 0;   // from then to the last page
  std::uint64_t missing_pages = 0;
  std::uint64_t remote_faults = 0;
  double fault_median_us = 0, fault_p99_us = 0, fault_max_us = 0;
  std::uint64_t guest_writes = 0;  // the destination's guest, from the switch to the commit
  bool verified = false;
};

struct PostcopyBenchResult {
  std::vector<PostcopyBenchRun> runs;
  PostcopyBenchRun median;  // each figure's median over the runs (verified: all were)
};

Result<PostcopyBenchResult> run_postcopy_bench(const PostcopyBenchOptions& options, std::ostream& progress);

}  // namespace pagewire::bench
