#include "pagewire/bench/tracker_bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ostream>
#include <random>
#include <thread>
#include <vector>

#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/migration/write_tracker.hpp"
#include "median.hpp"

namespace pagewire::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Writes 8 bytes at random places for `run_ms`; with a tracker, looks every `interval_ms`.
// Returns the writer's writes per second, and adds what the looks reported to `reported`.
Result<double> timed_writes(std::span<std::byte> region, migration::WriteTracker* tracker, const TrackerBenchOptions& options,
                            std::uint64_t* reported, std::uint64_t* looks) {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> writes{0};
  std::thread writer([&] {
    std::mt19937_64 rng(3);
    const std::uint64_t slots = region.size() / 8;
    const auto hot_slots = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(options.hot_fraction *
                                                                                 static_cast<double>(slots)));
    std::uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 64; ++i, ++n) {
        const std::uint64_t draw = rng();
        const std::uint64_t slot = draw % 10 < 9 ? (draw >> 8) % hot_slots : (draw >> 8) % slots;
        std::memcpy(region.data() + slot * 8, &n, sizeof n);
      }
    }
    writes.store(n, std::memory_order_relaxed);
  });
  const auto start = Clock::now();
  std::vector<std::uint64_t> pages;
  migration::DirtyPages marked(region.size() / static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
  Status status = Ok{};
  while (seconds_since(start) * 1000 < options.run_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(tracker != nullptr ? options.interval_ms : 5));
    if (tracker == nullptr || !status) continue;
    pages.clear();
    status = tracker->collect(marked);
    marked.drain(&pages);
    *reported += pages.size();
    ++*looks;
  }
  stop.store(true);
  writer.join();
  const double seconds = seconds_since(start);
  if (!status) return status.error();
  return static_cast<double>(writes.load()) / seconds;
}

// A look at the region with `dirty` pages written since the last one (spread evenly).
Result<double> timed_look(std::span<std::byte> region, migration::WriteTracker& tracker, std::uint64_t dirty) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::uint64_t pages = region.size() / page;
  for (std::uint64_t i = 0; i < dirty; ++i) region[(i * pages / dirty) * page] = std::byte{1};
  migration::DirtyPages marked(pages);
  std::vector<std::uint64_t> found;
  found.reserve(dirty);
  const auto start = Clock::now();
  if (Status status = tracker.collect(marked); !status) return status.error();
  marked.drain(&found);  // part of a look: the migration reads the list
  const double seconds = seconds_since(start);
  if (found.size() < dirty) return make_error("write tracking found " + std::to_string(found.size()) + " of " +
                                              std::to_string(dirty) + " pages written");
  return seconds;
}

}  // namespace

Result<TrackerBenchResult> run_tracker_bench(const TrackerBenchOptions& options, std::ostream& progress) {
  auto memory = sim::MappedMemory::allocate(options.region_bytes);  // populated before anything is timed
  if (!memory) return memory.error();
  const std::span<std::byte> region{memory->data(), options.region_bytes};
  std::memset(region.data(), 0x5a, region.size());  // every page written once: none faults later untracked
  const double gib = static_cast<double>(options.region_bytes) / (1ull << 30);
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const auto dirty = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(options.dirty_share *
                                                                            static_cast<double>(region.size() / page)));
  std::vector<double> clean, per_dirty, untracked, tracked, ratios, reported_per_look;
  for (int r = 0; r < options.repeats; ++r) {
    std::uint64_t ignored = 0, no_looks = 0, reported = 0, looks = 0;
    Result<double> plain = 0.0, with_tracking = 0.0, clean_look = 0.0, dirty_look = 0.0;
    auto run_tracked = [&]() -> Status {
      auto tracker = migration::WriteTracker::create(region, page);  // stops tracking when it goes
      if (!tracker) return tracker.error();
      clean_look = timed_look(region, *tracker, 0);
      dirty_look = clean_look ? timed_look(region, *tracker, dirty) : clean_look;
      if (!dirty_look) return dirty_look.error();
      with_tracking = timed_writes(region, &*tracker, options, &reported, &looks);
      return with_tracking ? Status{Ok{}} : Status{with_tracking.error()};
    };
    // Untracked and tracked runs take turns going first.
    if (r % 2 == 1) {
      if (Status status = run_tracked(); !status) return status.error();
    }
    plain = timed_writes(region, nullptr, options, &ignored, &no_looks);
    if (!plain) return plain.error();
    if (r % 2 == 0) {
      if (Status status = run_tracked(); !status) return status.error();
    }
    clean.push_back(*clean_look * 1000 / gib);
    per_dirty.push_back(std::max(0.0, *dirty_look - *clean_look) * 1e6 / static_cast<double>(dirty));
    untracked.push_back(*plain);
    tracked.push_back(*with_tracking);
    ratios.push_back(*with_tracking / *plain);
    reported_per_look.push_back(looks == 0 ? 0 : static_cast<double>(reported) / static_cast<double>(looks));
    progress << "  repeat " << r + 1 << ": clean look " << clean.back() << " ms/GiB, " << per_dirty.back()
             << " us per dirty page; writes/s untracked " << untracked.back() << ", tracked " << tracked.back()
             << " (" << ratios.back() << ")" << std::endl;
  }
  return TrackerBenchResult{.clean_look_ms_per_gib = median(clean),
                            .look_us_per_dirty_page = median(per_dirty),
                            .untracked_writes_per_second = median(untracked),
                            .tracked_writes_per_second = median(tracked),
                            .tracked_vs_untracked = median(ratios),
                            .pages_reported_per_look = median(reported_per_look)};
}

}  // namespace pagewire::bench
