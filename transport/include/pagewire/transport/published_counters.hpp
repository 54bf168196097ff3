// A stream's counters as another thread may read them while the stream runs: the owning
// core publishes a copy now and then (a seqlock whose words are relaxed atomics, so the
// reader never sees a torn value and nothing here is a data race), and readers retry
// while a publish is in progress. The data path keeps its plain counters; publishing costs
// a few dozen stores about once a millisecond.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <type_traits>

#include "pagewire/pagecodec/record.hpp"
#include "pagewire/transport/stream_counters.hpp"

namespace pagewire::transport {

struct StreamSnapshot {
  StreamCounters stream;
  std::array<std::uint64_t, pagecodec::kEncodingCount> pages{};  // encoded (source) or applied (destination)
};
static_assert(std::is_trivially_copyable_v<StreamSnapshot> && sizeof(StreamSnapshot) % sizeof(std::uint64_t) == 0);

class PublishedCounters {
 public:
  // Owning core only.
  void publish(const StreamSnapshot& snapshot) {
    const auto words = std::bit_cast<std::array<std::uint64_t, kWords>>(snapshot);
    const std::uint64_t sequence = sequence_.load(std::memory_order_relaxed);
    sequence_.store(sequence + 1, std::memory_order_relaxed);  // odd: a publish is in progress
    std::atomic_thread_fence(std::memory_order_release);
    for (std::size_t w = 0; w < kWords; ++w) words_[w].store(words[w], std::memory_order_relaxed);
    sequence_.store(sequence + 2, std::memory_order_release);
  }

  // Any thread.
  StreamSnapshot read() const {
    std::array<std::uint64_t, kWords> words;
    for (;;) {
      const std::uint64_t before = sequence_.load(std::memory_order_acquire);
      if (before & 1) continue;
      for (std::size_t w = 0; w < kWords; ++w) words[w] = words_[w].load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (sequence_.load(std::memory_order_relaxed) == before) break;
    }
    return std::bit_cast<StreamSnapshot>(words);
  }

 private:
  static constexpr std::size_t kWords = sizeof(StreamSnapshot) / sizeof(std::uint64_t);
  std::atomic<std::uint64_t> sequence_{0};
  std::array<std::atomic<std::uint64_t>, kWords> words_{};
};

// When a stream publishes: about every millisecond, and at once when it goes idle (so the
// state it stops in is what readers see).
class PublishSchedule {
 public:
  bool due(std::uint64_t now, bool idle) const { return now >= next_tsc_ || (idle && !idle_published_); }
  void published(std::uint64_t now, bool idle, std::uint64_t tsc_hz) {
    next_tsc_ = now + tsc_hz / 1000;
    idle_published_ = idle;
  }

 private:
  std::uint64_t next_tsc_ = 0;
  bool idle_published_ = false;
};

}  // namespace pagewire::transport
