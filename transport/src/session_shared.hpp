// What both session ends share: the checks before a handshake, the stream cores' tasks
// and how the control thread waits for them, and the counters read from any thread.
#pragma once

#include <rte_cycles.h>
#include <rte_lcore.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/stream_runner.hpp"

namespace pagewire::transport {

// A session id no other session on the link is likely to have; never 0 (no session yet).
std::uint32_t new_session_id();

// What both ends check before a handshake: a region the protocol can address, and a queue
// pair per stream, each stream's frames steered to its own queue. A port with fewer queue
// pairs than the streams asked for carries as many streams as it has: the handshake then
// settles on the smaller offer of the two ends. Returns this end's offer.
Result<std::uint16_t> prepare_port(const SessionConfig& config, const Port& port);

// The guest memory a session carries holds exactly the region_pages it offers.
Status check_memory(const pagecodec::PageMap& memory, const SessionConfig& config);

// Makes every block of `memory` reachable by the port's DMA (Port::map_for_dma), all or none.
Status map_for_dma(const Port& port, const pagecodec::PageMap& memory);
void unmap_for_dma(const Port& port, const pagecodec::PageMap& memory);

// Why a session runs fewer streams than were asked for; empty when it runs them all.
std::string fewer_streams_note(std::uint16_t asked, std::uint16_t agreed, const Port& port);

// Frames cross a network (or a test middlebox that stands for one), not only memory.
bool crosses_network(const SessionConfig& config, const Port& port);

// The stream cores, when the configuration names them: one lcore per stream the session runs.
Result<std::unique_ptr<StreamRunner>> launch_runner(const SessionConfig& config);

// Anything a stream's traffic changes: what IdleBackoff watches.
inline std::uint64_t traffic(const StreamCounters& counters) {
  return counters.frames_sent + counters.frames_received + counters.acks_sent + counters.acks_received;
}

// A stream core's task for a round (source) or for the rounds up to FIN (destination):
// poll until the stream has nothing left, or the control thread calls the core back.
template <typename Stream>
void poll_until_done(Stream& stream, const StreamRunner& runner) {
  IdleBackoff backoff(runner.options().idle_sleep_us);
  while (!runner.stop_requested() && stream.poll(rte_rdtsc())) backoff.after_poll(traffic(stream.counters()));
}

// Calls `tick` (if any) about every 100 ms of a control loop.
class Ticker {
 public:
  explicit Ticker(const std::function<void()>& tick) : tick_(tick), next_(rte_rdtsc() + interval()) {}
  void at(std::uint64_t now) {
    if (!tick_ || now <= next_) return;
    tick_();
    next_ = rte_rdtsc() + interval();
  }

 private:
  static std::uint64_t interval() { return rte_get_tsc_hz() / 10; }
  const std::function<void()>& tick_;
  std::uint64_t next_;
};

// How a control thread waits for the stream cores: it looks again after 20 us, then twice as
// long each time up to 1 ms. The switchover's short phases end within microseconds of
// their last frame, and a round of seconds costs a thousand wake-ups a second, not tens of
// thousands (each one preempts a stream core where lcores share CPUs).
class ControlWait {
 public:
  void pause() {
    std::this_thread::sleep_for(interval_);
    interval_ = std::min(interval_ * 2, std::chrono::microseconds(1000));
  }

 private:
  std::chrono::microseconds interval_{20};
};

template <typename Stream>
std::vector<const PublishedCounters*> published_of(const std::vector<Stream>& streams) {
  std::vector<const PublishedCounters*> published;
  for (const auto& stream : streams) published.push_back(&stream.published());
  return published;
}

// The streams' published counters only: the control frames' drops change on stream 0's
// core during an exchange and are read once it is done (totals()).
template <typename Stream>
SessionTotals published_totals_of(const std::vector<Stream>& streams) {
  SessionTotals totals;
  for (const auto& stream : streams) {
    const StreamSnapshot snapshot = stream.published().read();
    totals.streams += snapshot.stream;
    for (std::size_t e = 0; e < snapshot.pages.size(); ++e) totals.encoded.pages[e] += snapshot.pages[e];
  }
  return totals;
}

template <typename Runner>
unsigned lcore_of(const Runner& runner, std::uint16_t s) {
  return runner == nullptr ? LCORE_ID_ANY : runner->lcore(s);
}

}  // namespace pagewire::transport
