#include "pagewire/sim/guest_model.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace pagewire::sim {

GuestModel::GuestModel(std::byte* memory, std::uint64_t pages, std::uint32_t page_size, migration::DirtyLog* log,
                       const GuestModelConfig& config)
    : memory_(memory), pages_(pages), page_size_(page_size), log_(log), config_(config) {
  config_.bytes_per_write = std::clamp<std::uint32_t>(config_.bytes_per_write, 1, page_size);
}

GuestModel::~GuestModel() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void GuestModel::start() { thread_ = std::thread([this] { run(); }); }

Status GuestModel::pause() {
  pause_requested_.store(true, std::memory_order_release);
  while (thread_.joinable() && !paused_.load(std::memory_order_acquire)) std::this_thread::yield();
  return Ok{};
}

void GuestModel::resume() {
  pause_requested_.store(false, std::memory_order_release);
  // Wait until the thread has left its pause, so that a pause() right after this one cannot
  // mistake the old state for a new pause.
  while (thread_.joinable() && paused_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_relaxed)) {
    std::this_thread::yield();
  }
}

Result<DirtyTrace> load_dirty_trace(const std::string& path, std::uint64_t guest_pages, std::uint32_t page_size) {
  std::ifstream in(path);
  if (!in) return make_error("--dirty-trace " + path + ": cannot read it");
  DirtyTrace trace;
  std::string line;
  for (std::uint64_t number = 1; std::getline(in, line); ++number) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    DirtyTrace::Write write{0, 0, 0};
    if (!(fields >> write.at_us)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank
      return make_error(path + ":" + std::to_string(number) + ": expected '<microseconds> <page> [<bytes>]'");
    }
    std::int64_t bytes = 0;
    if (!(fields >> write.page)) return make_error(path + ":" + std::to_string(number) + ": expected a page index");
    if (fields >> bytes && (bytes < 1 || bytes > page_size)) {
      return make_error(path + ":" + std::to_string(number) + ": " + std::to_string(bytes) +
                        " bytes: expected 1.." + std::to_string(page_size));
    }
    std::string extra;
    if (fields >> extra) return make_error(path + ":" + std::to_string(number) + ": unexpected '" + extra + "'");
    if (write.page >= guest_pages) {
      return make_error(path + ":" + std::to_string(number) + ": page " + std::to_string(write.page) +
                        " is outside the guest's " + std::to_string(guest_pages) + " pages");
    }
    if (!trace.writes.empty() && write.at_us < trace.writes.back().at_us) {
      return make_error(path + ":" + std::to_string(number) + ": time goes backwards");
    }
    write.bytes = static_cast<std::uint32_t>(bytes);
    trace.writes.push_back(write);
  }
  if (trace.writes.empty()) return make_error("--dirty-trace " + path + ": no writes in it");
  trace.period_us = std::max<std::uint64_t>(trace.writes.back().at_us, 1);
  return trace;
}

void GuestModel::write_page(std::uint64_t page, std::uint32_t bytes, std::uint64_t random) {
  std::mt19937_64 rng(random);
  std::byte* target = memory_ + page * page_size_ + rng() % (page_size_ - bytes + 1);
  for (std::uint32_t i = 0; i < bytes; i += 8) {
    const std::uint64_t value = rng();
    std::memcpy(target + i, &value, std::min<std::uint32_t>(8, bytes - i));
  }
  log_->mark(page);  // after the write: see migration::DirtyLog
  writes_.fetch_add(1, std::memory_order_relaxed);
}

// Parks the thread while a pause is requested. Returns false when the model is stopping.
bool GuestModel::honour_pause() {
  if (!pause_requested_.load(std::memory_order_acquire)) return !stop_.load(std::memory_order_relaxed);
  paused_.store(true, std::memory_order_release);
  while (pause_requested_.load(std::memory_order_acquire) && !stop_.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  paused_.store(false, std::memory_order_release);
  return !stop_.load(std::memory_order_relaxed);
}

// Replays the trace in real time, looping; throttling stretches time as it slows the rate.
void GuestModel::replay() {
  using Clock = std::chrono::steady_clock;
  const DirtyTrace& trace = *config_.trace;
  std::mt19937_64 rng(config_.seed);
  double virtual_us = 0;  // trace time reached
  auto last = Clock::now();
  std::size_t next = 0;
  std::uint64_t loop_base = 0;
  while (honour_pause()) {
    const auto now = Clock::now();
    virtual_us += std::chrono::duration<double, std::micro>(now - last).count() * (1.0 - throttle());
    last = now;
    while (loop_base + trace.writes[next].at_us <= virtual_us) {
      const auto& write = trace.writes[next];
      write_page(write.page, write.bytes != 0 ? write.bytes : config_.bytes_per_write, rng());
      if (++next == trace.writes.size()) {
        next = 0;
        loop_base += trace.period_us;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  paused_.store(true, std::memory_order_release);
}

void GuestModel::run() {
  if (config_.trace != nullptr) {
    replay();
    return;
  }
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
      if (!honour_pause()) break;
      next = Clock::now();
      continue;
    }
    owed += config_.pages_per_second * (1.0 - throttle()) / 1000.0;
    for (; owed >= 1; owed -= 1) write_page(pick_page(), config_.bytes_per_write, rng());
    next += std::chrono::milliseconds(1);
    std::this_thread::sleep_until(next);
  }
  paused_.store(true, std::memory_order_release);
}

}  // namespace pagewire::sim
