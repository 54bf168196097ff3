// The control channel: frames that are not data (HELLO, PROBE, VERIFY, COMMIT, ABORT and
// their answers) go one at a time on queue 0, from the control thread before the streams
// run, or from stream 0's core afterwards. The one place both session ends send, receive
// and wait for them.
#pragma once

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/frame_crypto.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/stream.hpp"

namespace pagewire::transport {

inline std::uint64_t ms_to_tsc(std::uint64_t ms) { return ms * rte_get_tsc_hz() / 1000; }

// One control frame. `crypto` seals it (every frame after HELLO_ACK in a session with a
// key); `pad_to_ip_bytes` pads a path-MTU probe. False when no mbuf was free or the queue
// was full.
bool send_control(const QueueRef& queue, const Path& path, const FrameFields& fields, const void* payload,
                  std::uint16_t payload_bytes, FrameCrypto* crypto, std::uint16_t pad_to_ip_bytes = 0);

// What the handshake does with a frame of another protocol version (dropped, and counted, as
// kBadVersion, with only the prefix every version keeps read): by default, nothing.
struct IgnoreOtherVersion {
  bool operator()(const ReceivedFrame&, const rte_mbuf*) const { return false; }
};

// Receives control frames on queue 0 until `handle` returns true or the deadline passes,
// answering ARP on the way. Frames that fail parsing are counted in `counters`; `handle`
// gets the rest unopened (accept() opens them with the key of the session they name), and
// `other_version` those of another protocol version.
template <typename Handle, typename OtherVersion = IgnoreOtherVersion>
bool receive_control(const QueueRef& queue, const Path& path, std::uint16_t streams, std::uint32_t session,
                     std::uint64_t deadline, StreamCounters* counters, Handle&& handle,
                     OtherVersion&& other_version = {}) {
  rte_mbuf* burst[32];
  while (rte_rdtsc() < deadline) {
    const std::uint16_t n = rte_eth_rx_burst(queue.port, queue.queue, burst, 32);
    bool done = false;
    for (std::uint16_t i = 0; i < n; ++i) {
      if (answer_arp(burst[i], path.local, queue)) {
        rte_pktmbuf_free(burst[i]);
        continue;
      }
      ReceivedFrame frame = parse_frame(burst[i], path, streams, session);
      if (frame.drop != FrameDrop::kNone) ++counters->drops[static_cast<std::size_t>(frame.drop)];
      if (!done && frame.drop == FrameDrop::kNone) done = handle(frame, &burst[i]);
      if (!done && frame.drop == FrameDrop::kBadVersion) done = other_version(frame, burst[i]);
      rte_pktmbuf_free(burst[i]);
    }
    if (done) return true;
    // Control path: waiting here must not take a core from the data path or from the
    // peer's work (on a shared machine, the destination computing its digest).
    if (n == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return false;
}

// receive_control() for frames of our own session: opened (authenticated, decrypted) with
// `crypto` first.
template <typename Handle, typename OtherVersion = IgnoreOtherVersion>
bool await_control(const QueueRef& queue, const Path& path, std::uint16_t streams, std::uint32_t session,
                   std::uint64_t deadline, StreamCounters* counters, FrameCrypto* crypto, Handle&& handle,
                   OtherVersion&& other_version = {}) {
  return receive_control(
      queue, path, streams, session, deadline, counters,
      [&](ReceivedFrame& frame, rte_mbuf** mbuf) {
        const FrameDrop drop = open_frame(mbuf, &frame, crypto, queue.pool);
        if (drop != FrameDrop::kNone) {
          ++counters->drops[static_cast<std::size_t>(drop)];
          return false;
        }
        return handle(frame, *mbuf);
      },
      other_version);
}

// Notices a peer that went quiet: progress is any change in a number the caller sums
// (acknowledgements, frames). With a log, each silence that ends is noted there: the
// longest, and those longer than `outage_tsc` as outages ridden out.
class SilenceWatch {
 public:
  explicit SilenceWatch(std::uint64_t limit_tsc, OutageLog* log = nullptr, std::uint64_t outage_tsc = 0)
      : limit_(limit_tsc), since_(rte_rdtsc()), log_(log), outage_(outage_tsc) {}

  // True once `progress` has not changed for longer than the limit.
  bool expired(std::uint64_t progress, std::uint64_t now) {
    if (progress != last_) {
      if (log_ != nullptr && last_ != 0) note(now - since_);
      last_ = progress;
      since_ = now;
      return false;
    }
    return now - since_ > limit_;
  }

 private:
  void note(std::uint64_t silence) {
    log_->longest_tsc = std::max(log_->longest_tsc, silence);
    if (outage_ != 0 && silence > outage_) ++log_->ridden;
  }

  std::uint64_t limit_;
  std::uint64_t since_;
  std::uint64_t last_ = 0;
  OutageLog* log_;
  std::uint64_t outage_;
};

// How long a session waits for a silent peer: the peer timeout, or the resume window where
// an outage is ridden out (SessionConfig::resume_window_ms).
inline std::uint32_t silence_limit_ms(const SessionConfig& config, bool ride_out) {
  return ride_out ? std::max(config.peer_timeout_ms, config.resume_window_ms) : config.peer_timeout_ms;
}

// For an error about a silent peer: what the port itself says about its link.
std::string link_note(std::uint16_t port);

// For an error about a handshake that never completed: what arrived and was dropped, and
// why (frames of ours that a path or a port mangles end here, not in silence).
std::string drops_note(const StreamCounters& counters);

}  // namespace pagewire::transport
