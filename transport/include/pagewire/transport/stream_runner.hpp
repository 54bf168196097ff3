// Runs each stream of a session on an EAL worker lcore of its own: the multi-core data
// plane. The sessions use it when SessionConfig::stream_lcores names lcores; without it an
// embedder polls the streams from threads of its own (SourceSession::poll and
// DestinationSession::poll stay the lowest layer).
//
// Ownership moves, it is never shared. The control thread hands every stream core the same
// task (start()), and from then on stream s belongs to its core alone: nothing else polls
// it, touches its queue or changes its state. When a core's task returns, the core
// publishes "done" (release) and the control thread, once it has seen that (acquire), owns
// the stream again: it may read its plain counters, assign the next round, or start the
// next task. There is no lock anywhere: per stream, one task epoch written by the control
// thread and one done epoch written by the core, each a release/acquire pair.
//
// Threading: every method belongs to the one control thread that created the runner,
// except that a task reads its stop flag (stop_requested()) on its own core.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::transport {

struct StreamRunnerOptions {
  // While a stream core's task sees no traffic for a while, it sleeps this long between
  // polls. 0 (the default, for cores of their own): it polls without pause, as a DPDK data
  // path does. Set it when lcores share CPUs (EAL --lcores with more lcores than CPUs), so
  // an idle core yields its CPU to a busy one.
  std::uint32_t idle_sleep_us = 0;
};

int stream_worker_main(void* worker);  // a stream core's loop (rte_eal_remote_launch)

class StreamRunner {
 public:
  // A stream core's work: returns when its part is done, or soon after stop_requested().
  using Task = std::function<void(std::uint16_t stream)>;

  // Launches one worker on each of `lcores` (stream s on lcores[s]): EAL worker lcores that
  // are idle, none of them the calling thread's. Fails naming the lcore that cannot be used.
  static Result<std::unique_ptr<StreamRunner>> launch(std::span<const unsigned> lcores,
                                                      const StreamRunnerOptions& options = {});
  ~StreamRunner();  // stops any task, ends every worker and waits for it
  StreamRunner(const StreamRunner&) = delete;
  StreamRunner& operator=(const StreamRunner&) = delete;

  std::uint16_t streams() const { return static_cast<std::uint16_t>(workers_.size()); }
  unsigned lcore(std::uint16_t stream) const;
  const StreamRunnerOptions& options() const { return options_; }

  // Every stream core runs `task(s)`. The previous task must be done on every core.
  void start(Task task);
  bool done(std::uint16_t stream) const;  // its task returned: the control thread owns it again
  bool all_done() const;
  // Asks every running task to return (they read stop_requested()) and waits until each has.
  void stop();
  // For a task, on its own core: the control thread wants it to return.
  bool stop_requested() const { return stop_.load(std::memory_order_acquire); }

  struct Worker;

 private:
  friend int stream_worker_main(void* worker);
  void run_task(std::uint16_t stream) const;
  explicit StreamRunner(const StreamRunnerOptions& options);
  StreamRunnerOptions options_;
  Task task_;  // written by start() before the epoch that publishes it
  std::atomic<bool> stop_{false};
  std::uint64_t epoch_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
};

// A task's pause when its stream has seen no traffic for a while (StreamRunnerOptions::
// idle_sleep_us): `activity` is any number the stream's traffic changes, such as frames
// received plus frames sent.
class IdleBackoff {
 public:
  explicit IdleBackoff(std::uint32_t sleep_us) : sleep_us_(sleep_us) {}
  void after_poll(std::uint64_t activity);

 private:
  static constexpr std::uint32_t kQuietPolls = 256;  // polls without traffic before a sleep
  std::uint32_t sleep_us_;
  std::uint32_t quiet_polls_ = 0;
  std::uint64_t last_activity_ = 0;
};

}  // namespace pagewire::transport
