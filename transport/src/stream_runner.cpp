#include "pagewire/transport/stream_runner.hpp"

#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>

namespace pagewire::transport {

// One per stream core, on a cache line of its own: the control thread writes `posted`,
// the core writes `finished`, and neither line is written by anyone else.
struct alignas(64) StreamRunner::Worker {
  unsigned lcore = 0;
  std::uint16_t stream = 0;
  const StreamRunner* runner = nullptr;
  bool launched = false;
  std::atomic<bool> exit{false};  // read after the epoch that follows it
  alignas(64) std::atomic<std::uint64_t> posted{0};    // release: task_ and exit are written
  alignas(64) std::atomic<std::uint64_t> finished{0};  // release: the stream is handed back
};

namespace {

// A parked core spins this long for its next task (the switchover's phases follow each
// other within microseconds), then sleeps between looks so it does not hold a CPU that
// another lcore may share.
constexpr std::uint64_t kParkSpinUs = 200;
constexpr auto kParkSleep = std::chrono::microseconds(20);

std::uint64_t await_post(const std::atomic<std::uint64_t>& posted, std::uint64_t seen) {
  const std::uint64_t spin_until = rte_rdtsc() + kParkSpinUs * rte_get_tsc_hz() / 1000000;
  for (;;) {
    // acquire: pairs with start()'s and the destructor's release stores of `posted`.
    const std::uint64_t epoch = posted.load(std::memory_order_acquire);
    if (epoch != seen) return epoch;
    if (rte_rdtsc() < spin_until) {
      rte_pause();
    } else {
      std::this_thread::sleep_for(kParkSleep);
    }
  }
}

}  // namespace

// The loop each stream core runs for the runner's whole life.
int stream_worker_main(void* argument) {
  auto& worker = *static_cast<StreamRunner::Worker*>(argument);
  std::uint64_t seen = 0;
  for (;;) {
    seen = await_post(worker.posted, seen);
    if (worker.exit.load(std::memory_order_relaxed)) return 0;
    worker.runner->run_task(worker.stream);
    // release: everything the task did to the stream happens before the control thread,
    // which acquires this in done(), touches the stream again.
    worker.finished.store(seen, std::memory_order_release);
  }
}

Result<std::unique_ptr<StreamRunner>> StreamRunner::launch(std::span<const unsigned> lcores,
                                                           const StreamRunnerOptions& options) {
  if (lcores.empty()) return make_error("stream lcores: expected one per stream, got none");
  std::set<unsigned> distinct(lcores.begin(), lcores.end());
  if (distinct.size() != lcores.size()) return make_error("stream lcores: each stream needs an lcore of its own");
  std::unique_ptr<StreamRunner> runner(new StreamRunner(options));
  for (std::size_t s = 0; s < lcores.size(); ++s) {
    const unsigned lcore = lcores[s];
    if (lcore >= RTE_MAX_LCORE || !rte_lcore_is_enabled(lcore)) {
      return make_error("stream " + std::to_string(s) + ": lcore " + std::to_string(lcore) +
                        " is not one EAL was started with (-l / --lcores)");
    }
    if (lcore == rte_lcore_id() || lcore == rte_get_main_lcore()) {
      return make_error("stream " + std::to_string(s) + ": lcore " + std::to_string(lcore) +
                        " is the main (control) lcore; streams run on worker lcores");
    }
    if (rte_eal_get_lcore_state(lcore) != WAIT) {
      return make_error("stream " + std::to_string(s) + ": lcore " + std::to_string(lcore) +
                        " is busy with other work (another session's stream?)");
    }
    auto worker = std::make_unique<Worker>();
    worker->lcore = lcore;
    worker->stream = static_cast<std::uint16_t>(s);
    worker->runner = runner.get();
    runner->workers_.push_back(std::move(worker));
  }
  for (auto& worker : runner->workers_) {
    if (rte_eal_remote_launch(stream_worker_main, worker.get(), worker->lcore) != 0) {
      return make_error("stream " + std::to_string(worker->stream) + ": cannot launch lcore " +
                        std::to_string(worker->lcore));  // the destructor ends those launched
    }
    worker->launched = true;
  }
  return runner;
}

StreamRunner::StreamRunner(const StreamRunnerOptions& options) : options_(options) {}

StreamRunner::~StreamRunner() {
  stop();
  ++epoch_;
  for (auto& worker : workers_) {
    if (!worker->launched) continue;
    worker->exit.store(true, std::memory_order_relaxed);
    worker->posted.store(epoch_, std::memory_order_release);
  }
  for (auto& worker : workers_) {
    if (worker->launched) rte_eal_wait_lcore(worker->lcore);
  }
}

unsigned StreamRunner::lcore(std::uint16_t stream) const { return workers_[stream]->lcore; }

void StreamRunner::run_task(std::uint16_t stream) const { task_(stream); }

void StreamRunner::start(Task task) {
  task_ = std::move(task);
  stop_.store(false, std::memory_order_relaxed);
  ++epoch_;
  // release: task_ and the streams' new state are written before any core sees the epoch.
  for (auto& worker : workers_) worker->posted.store(epoch_, std::memory_order_release);
}

bool StreamRunner::done(std::uint16_t stream) const {
  const Worker& worker = *workers_[stream];
  return !worker.launched || worker.finished.load(std::memory_order_acquire) == epoch_;
}

bool StreamRunner::all_done() const {
  for (std::uint16_t s = 0; s < streams(); ++s) {
    if (!done(s)) return false;
  }
  return true;
}

void StreamRunner::stop() {
  stop_.store(true, std::memory_order_release);
  while (!all_done()) std::this_thread::sleep_for(kParkSleep);
}

void IdleBackoff::after_poll(std::uint64_t activity) {
  if (sleep_us_ == 0) return;
  if (activity != last_activity_) {
    last_activity_ = activity;
    quiet_polls_ = 0;
    return;
  }
  if (quiet_polls_ < kQuietPolls) {
    ++quiet_polls_;
    return;
  }
  std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
}

}  // namespace pagewire::transport
