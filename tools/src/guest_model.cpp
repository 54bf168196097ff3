#include "pagewire/tools/guest_model.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

namespace pagewire::tools {

void DirtyLog::collect(std::vector<std::uint64_t>* out) {
  for (std::size_t w = 0; w < words_.size(); ++w) {
    std::uint64_t bits = words_[w].exchange(0, std::memory_order_acquire);
    while (bits != 0) {
      out->push_back(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
      bits &= bits - 1;
    }
  }
}

GuestModel::GuestModel(std::byte* memory, std::uint64_t pages, std::uint32_t page_size, DirtyLog* log,
                       const GuestModelConfig& config)
    : memory_(memory), pages_(pages), page_size_(page_size), log_(log), config_(config) {
  config_.bytes_per_write = std::clamp<std::uint32_t>(config_.bytes_per_write, 1, page_size);
}

GuestModel::~GuestModel() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void GuestModel::start() { thread_ = std::thread([this] { run(); }); }

void GuestModel::pause() {
  pause_requested_.store(true, std::memory_order_release);
  while (thread_.joinable() && !paused_.load(std::memory_order_acquire)) std::this_thread::yield();
}

void GuestModel::resume() {
  pause_requested_.store(false, std::memory_order_release);
  // Wait until the thread has left its pause, so that a pause() right after this one cannot
  // mistake the old state for a new pause.
  while (thread_.joinable() && paused_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_relaxed)) {
    std::this_thread::yield();
  }
}

void GuestModel::run() {
  using Clock = std::chrono::steady_clock;
  std::mt19937_64 rng(config_.seed);
  const std::uint64_t hot_pages = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(config_.hot_fraction * pages_));
  std::uint64_t sweep = 0;
  auto pick_page = [&]() -> std::uint64_t {
    switch (config_.pattern) {
      case WritePattern::kUniform: return rng() % pages_;
      case WritePattern::kSequential: return sweep++ % pages_;
      case WritePattern::kHotSet:
        if (std::uniform_real_distribution<double>(0, 1)(rng) < config_.hot_share) return rng() % hot_pages;
        return rng() % pages_;
    }
    return 0;
  };
  // Writes come in 1 ms slices, so the rate holds at any speed.
  auto next = Clock::now();
  double owed = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (pause_requested_.load(std::memory_order_acquire)) {
      paused_.store(true, std::memory_order_release);
      while (pause_requested_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      paused_.store(false, std::memory_order_release);
      next = Clock::now();
      continue;
    }
    owed += config_.pages_per_second * (1.0 - throttle()) / 1000.0;
    for (; owed >= 1; owed -= 1) {
      const std::uint64_t page = pick_page();
      std::byte* target = memory_ + page * page_size_ + rng() % (page_size_ - config_.bytes_per_write + 1);
      for (std::uint32_t i = 0; i < config_.bytes_per_write; i += 8) {
        const std::uint64_t value = rng();
        std::memcpy(target + i, &value, std::min<std::uint32_t>(8, config_.bytes_per_write - i));
      }
      log_->mark(page);  // after the write: see DirtyLog
      writes_.fetch_add(1, std::memory_order_relaxed);
    }
    next += std::chrono::milliseconds(1);
    std::this_thread::sleep_until(next);
  }
  paused_.store(true, std::memory_order_release);
}

}  // namespace pagewire::tools
