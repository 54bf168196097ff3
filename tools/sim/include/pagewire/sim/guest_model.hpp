// A guest that keeps running while it migrates: a thread writing into the source region at
// a configured rate and pattern, marking every page it writes in a dirty log that the
// migration reads and clears atomically. Its writes race with the transport reading the
// same pages, which is exactly the hazard a real hypervisor has; pagecodec copes by
// snapshotting what it sends.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "pagewire/migration/dirty_log.hpp"
#include "pagewire/migration/hooks.hpp"
#include "pagewire/result.hpp"

namespace pagewire::sim {

// A recorded dirtying pattern to replay. Text, one write per line:
//   <microseconds since start> <page index> [<bytes written>]
// '#' starts a comment; times never go backwards; pages lie inside the guest; bytes are
// 1..page size (default: the model's bytes_per_write). Replay loops when it reaches the end.
struct DirtyTrace {
  struct Write {
    std::uint64_t at_us;
    std::uint64_t page;
    std::uint32_t bytes;  // 0: the model's bytes_per_write
  };
  std::vector<Write> writes;
  std::uint64_t period_us = 0;  // the last write's time: one loop of the trace
};

// Reads and checks a trace; the message names the line and what was wrong with it.
Result<DirtyTrace> load_dirty_trace(const std::string& path, std::uint64_t guest_pages, std::uint32_t page_size);

enum class WritePattern {
  kUniform,     // any page, equally likely
  kHotSet,      // hot_fraction of the pages take hot_share of the writes
  kSequential,  // a sweep through memory, wrapping around
};

struct GuestModelConfig {
  double pages_per_second = 10000;  // dirtying rate before throttling
  WritePattern pattern = WritePattern::kHotSet;
  double hot_fraction = 0.05;
  double hot_share = 0.9;
  std::uint32_t bytes_per_write = 64;  // a few bytes (delta pays) .. a whole page (it does not)
  std::uint64_t seed = 1;
  const DirtyTrace* trace = nullptr;    // when set, replayed instead of rate and pattern
};

// The migration's GuestControl for a synthetic guest: pause, resume and throttle act on the
// writer thread.
class GuestModel final : public migration::GuestControl {
 public:
  // `memory` holds `pages` pages of `page_size` bytes; the model never writes outside them.
  GuestModel(std::byte* memory, std::uint64_t pages, std::uint32_t page_size, migration::DirtyLog* log,
             const GuestModelConfig& config);
  ~GuestModel();

  void start();
  // Returns once no write is in progress; nothing is written until resume().
  Status pause() override;
  void resume() override;
  // Fraction of the configured rate withheld, in [0, 1): auto-converge's lever.
  Status set_throttle(double fraction) override {
    throttle_.store(fraction, std::memory_order_relaxed);
    return Ok{};
  }
  double throttle() const { return throttle_.load(std::memory_order_relaxed); }
  std::uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  void run();
  void replay();
  void write_page(std::uint64_t page, std::uint32_t bytes, std::uint64_t random);
  bool honour_pause();

  std::byte* memory_;
  std::uint64_t pages_;
  std::uint32_t page_size_;
  migration::DirtyLog* log_;
  GuestModelConfig config_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> pause_requested_{false};
  std::atomic<bool> paused_{false};
  std::atomic<double> throttle_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::thread thread_;
};

}  // namespace pagewire::sim
