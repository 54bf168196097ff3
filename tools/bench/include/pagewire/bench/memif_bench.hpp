// `pagewire bench transport --link memif`: the RAW page rounds of `bench transport`, between
// two processes instead of two cores of one: the destination runs in a forked child with
// its own EAL and address space, joined to the source by memif, each on its own core of the
// placement plan. Each repeat times a memcpy of the same pages, then a round, back to back;
// with zero_copy also a round of pages declared stable (sent from guest memory by
// reference), the two rounds taking turns going first. At the end the destination hashes
// what it holds and the source compares.
//
// Call before EAL is initialised in this process (it forks, and each side inits its own).
#pragma once

#include <cstdint>
#include <iosfwd>

#include "pagewire/result.hpp"

namespace pagewire::bench {

struct MemifBenchOptions {
  std::uint64_t region_bytes = 256ull << 20;
  std::uint16_t streams = 1;
  int repeats = 5;
  std::uint32_t window_frames = 1024;
  std::uint16_t burst = 32;
  std::uint16_t mtu = 9000;  // memif's buffers (bsize) are sized to hold such a frame whole
  bool udp_checksum = false;  // a memory link: the frames cannot be corrupted on the way
  bool zero_copy = false;
  // Each end's streams on EAL lcores of their own (StreamRunner, as src/dst run), the ends
  // crosswise on the plan's two CPUs: the source's stream core where the destination's
  // control thread sleeps, and the other way round. Off: each end polls from one thread.
  bool stream_cores = false;
  // The destination is memif's client in its zero-copy mode (the source the server): its
  // PMD receives into buffers the source's PMD writes, so the destination copies each page
  // once (into guest memory) instead of twice.
  bool receiver_zero_copy = false;
};

struct MemifBenchResult {
  double gbps = 0;         // guest bits per second, median round
  double memcpy_gbps = 0;  // median memcpy of the same pages
  double vs_memcpy = 0;    // median of per-repeat ratios
  std::uint16_t path_mtu = 0;
  bool verified = false;   // the destination holds exactly the source's pages
  // With zero_copy: the stable rounds, and their median ratio to the copying round of the
  // same repeat.
  double zero_copy_gbps = 0;
  double zero_copy_vs_copy = 0;
  std::uint64_t pages_by_reference = 0;
};

Result<MemifBenchResult> run_memif_bench(const MemifBenchOptions& options, std::ostream& progress);

}  // namespace pagewire::bench
