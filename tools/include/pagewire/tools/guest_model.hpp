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

#include "pagewire/result.hpp"

namespace pagewire::tools {

// One bit per page. The guest sets a page's bit after writing it (release); the migration
// exchanges whole words with zero (acquire) before reading the pages. So a write is either
// seen by the read that follows the exchange, or its bit is set again after the exchange and
// the page goes in the next round: no write is ever lost.
class DirtyLog {
 public:
  explicit DirtyLog(std::uint64_t pages) : words_((pages + 63) / 64), pages_(pages) {}

  void mark(std::uint64_t page) {
    words_[page / 64].fetch_or(std::uint64_t{1} << (page % 64), std::memory_order_release);
  }
  // Appends the dirty pages (ascending) to `out` and clears them. Control thread only.
  void collect(std::vector<std::uint64_t>* out);
  std::uint64_t pages() const { return pages_; }

 private:
  std::vector<std::atomic<std::uint64_t>> words_;
  std::uint64_t pages_;
};

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

class GuestModel {
 public:
  // `memory` holds `pages` pages of `page_size` bytes; the model never writes outside them.
  GuestModel(std::byte* memory, std::uint64_t pages, std::uint32_t page_size, DirtyLog* log,
             const GuestModelConfig& config);
  ~GuestModel();

  void start();
  // Returns once no write is in progress; nothing is written until resume().
  void pause();
  void resume();
  // Fraction of the configured rate withheld, in [0, 1): auto-converge's lever.
  void set_throttle(double fraction) { throttle_.store(fraction, std::memory_order_relaxed); }
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
  DirtyLog* log_;
  GuestModelConfig config_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> pause_requested_{false};
  std::atomic<bool> paused_{false};
  std::atomic<double> throttle_{0};
  std::atomic<std::uint64_t> writes_{0};
  std::thread thread_;
};

}  // namespace pagewire::tools
