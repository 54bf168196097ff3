// `pagewire bench transport --link null`: what one source core spends per page, alone. The
// stream's frames go into a net_ring whose far end nobody opens; the same core frees them
// after each poll, as a NIC's TX completion would. Nothing is acknowledged (the window
// holds every frame of a round), so neither a destination nor a link sets the pace. Each repeat times a memcpy of the
// pages, a round whose pages are copied into frames, and a round of the same pages sent
// by reference (zero-copy), the two rounds taking turns going first.
//
// This is the part of zero-copy a memory link cannot show: on net_ring or memif the
// destination copies every page and sets the pace; on a NIC that gathers the chain by
// DMA, the source core's cost is what decides how many cores a link needs.
//
// With `cores` above 1, every repeat also times the same rounds (and the memcpy) with the
// pages split over that many streams, each on its own lcore, queue and ring, all started
// from one line: how the source side scales with cores, the region and the ratio measured
// in the same run. The streams share nothing but the port's mempool (per-lcore caches).
#pragma once

#include <cstdint>
#include <iosfwd>

#include "pagewire/result.hpp"

namespace pagewire::bench {

struct SourceCostOptions {
  std::uint64_t region_bytes = 64ull << 20;
  std::uint16_t mtu = 9000;
  int repeats = 5;
  std::uint16_t burst = 32;
  bool crc = false;
  std::uint16_t cores = 1;  // EAL must have as many lcores
};

// The same rounds on several cores at once, beside one core.
struct SourceScaling {
  std::uint16_t cores = 0;
  double copy_gbps = 0, reference_gbps = 0, memcpy_gbps = 0;  // all cores together, medians
  // Time on one core ÷ time on all of them, medians of per-repeat ratios: `cores` is ideal.
  double copy_speedup = 0, reference_speedup = 0, memcpy_speedup = 0;
};

struct SourceCostResult {
  std::uint16_t mtu = 0;                // the port's, which the frames are cut for
  double copy_gbps = 0;                 // guest bits per second of source-core time, median
  double reference_gbps = 0;
  double memcpy_gbps = 0;
  double copy_vs_memcpy = 0;            // medians of per-repeat ratios
  double reference_vs_copy = 0;
  double copy_ns_per_page = 0;
  double reference_ns_per_page = 0;
  std::uint64_t pages_by_reference = 0;  // in the last reference round
  SourceScaling scaling;                 // cores 0: not measured (options.cores == 1)
};

// Call after EAL is initialised, on its main lcore; with `cores` above 1 the first workers
// take part.
Result<SourceCostResult> run_source_cost_bench(const SourceCostOptions& options, std::ostream& progress);

}  // namespace pagewire::bench
