// Congestion control for one stream, in the manner of BBR (Cardwell et al., "BBR:
// Congestion-Based Congestion Control", ACM Queue 2016): the sender measures the path's
// bottleneck bandwidth (the highest delivery rate of the last ten round trips) and its
// minimum RTT, paces frames at that rate, and keeps about two bandwidth-delay products in
// flight. It grows the rate from a start-up gain of 2/ln 2 until the bandwidth stops
// growing, drains the queue it built, then probes for more (one round trip at 1.25x, one at
// 0.75x, six at 1x) so it follows a path whose share changes.
//
// Why not loss-based (Reno, CUBIC): a migration must keep 80 % of its rate over a 150 ms
// path with 1 % random loss, where a loss-based window shrinks to a few Mbit/s. Here loss is
// repaired by SACK and is not read as congestion; the queue is kept short by pacing instead.
// The price, as with BBR v1: a queue shallower than a quarter of the path's BDP overflows
// during each 1.25x probe (every eight round trips); docs/benchmarks.md ("Long distance")
// has what that costs on a 150 ms path with a 20 ms queue.
// Delivery-rate samples follow the IETF draft "Delivery Rate Estimation"
// (draft-cheng-iccrg-delivery-rate-estimation).
//
// Pure arithmetic on TSC ticks and bytes: no DPDK, no allocation, owned by the stream's core.
#pragma once

#include <array>
#include <cstdint>

namespace pagewire::transport {

// What the sender records with each frame it transmits (new or retransmitted).
struct DeliveryStamp {
  std::uint64_t delivered = 0;       // bytes delivered when the frame left
  std::uint64_t delivered_tsc = 0;   // when that count was reached
  std::uint64_t first_sent_tsc = 0;  // send time of the frame whose delivery began the interval
  bool app_limited = false;          // the sender had nothing to send: the rate says little
};

class PacingController {
 public:
  // `initial_rtt_tsc`: the handshake's round trip; until the first samples the sender may
  // send kInitialWindowFrames in it (2/ln 2 times over, as start-up does).
  PacingController(std::uint64_t tsc_hz, std::uint32_t frame_bytes, std::uint64_t initial_rtt_tsc);

  static constexpr std::uint32_t kInitialWindowFrames = 32;

  // A frame leaves now, with `inflight_bytes` in flight before it.
  DeliveryStamp on_send(std::uint64_t now, std::uint64_t inflight_bytes);
  // The sender ran out of data with the window not full: rate samples until what is in
  // flight now is delivered say little about the path.
  void on_app_limited(std::uint64_t inflight_bytes);
  // A retransmission timer fired: the samples that span the wait measure the outage, not the
  // path, and are taken only if they raise the estimate (as app-limited ones), so a burst of
  // loss does not collapse the rate the sender recovers at.
  void on_timeout(std::uint64_t inflight_bytes) { on_app_limited(inflight_bytes); }

  // SACK found `bytes` lost. In start-up, losses above 2 % of what a round delivered (and
  // at least 8 frames) mean the bottleneck's queue overflows: the pipe is full, and start-up
  // ends at once instead of after three rounds without growth (as BBR v2), which on a long
  // path with a shallow queue would drop most of a window per round. Random loss below
  // that share is still not taken for congestion.
  void on_loss(std::uint64_t bytes);

  // An ACK reports `bytes` newly delivered (cumulatively or selectively). `youngest` is the
  // stamp of the most recently sent of those frames, sent at `youngest_sent_tsc`; `rtt_tsc`
  // is an RTT sample (0: none, e.g. only retransmissions were acknowledged).
  void on_ack(std::uint64_t now, std::uint64_t bytes, const DeliveryStamp& youngest, std::uint64_t youngest_sent_tsc,
              std::uint64_t rtt_tsc, std::uint64_t inflight_bytes);

  double pacing_bytes_per_second() const { return pacing_rate_; }
  std::uint64_t window_bytes() const { return window_; }

  enum class Mode : std::uint8_t { kStartup, kDrain, kProbeBandwidth };
  Mode mode() const { return mode_; }
  double bottleneck_bytes_per_second() const;  // 0 before the first sample
  std::uint64_t min_rtt_tsc() const { return min_rtt_; }

 private:
  void new_round(std::uint64_t now);
  void measure_aggregation(std::uint64_t now, std::uint64_t bytes);
  void next_phase(std::uint64_t now);
  void update_targets();

  std::uint64_t tsc_hz_;
  std::uint32_t frame_bytes_;
  Mode mode_ = Mode::kStartup;
  double pacing_gain_;
  double window_gain_;

  std::uint64_t delivered_ = 0;
  std::uint64_t delivered_tsc_ = 0;
  std::uint64_t first_sent_tsc_ = 0;
  std::uint64_t app_limited_until_ = 0;  // samples are app-limited until delivered_ passes this

  // Round trips, counted as in BBR: a round ends when a frame sent after it began is delivered.
  std::uint64_t round_ = 0;
  std::uint64_t next_round_delivered_ = 0;
  std::uint64_t round_start_delivered_ = 0;
  std::uint64_t round_lost_ = 0;  // bytes SACK found lost since the round began
  static constexpr std::size_t kBandwidthRounds = 10;
  std::array<double, kBandwidthRounds> round_max_{};  // bytes per second, per round (ring)

  std::uint64_t min_rtt_;
  std::uint64_t min_rtt_stamp_ = 0;

  // ACK aggregation (BBR's extra_acked): receivers that work in bursts (a polling core,
  // delayed ACKs, a descheduled vCPU) deliver more at once than the bandwidth predicts; the
  // window carries that much more, or the sender idles waiting for the burst's ACKs.
  std::uint64_t aggregation_start_tsc_ = 0;
  std::uint64_t aggregation_bytes_ = 0;
  std::array<std::uint64_t, kBandwidthRounds> round_extra_{};

  double full_bandwidth_ = 0;
  int rounds_without_growth_ = 0;
  int probe_phase_ = 0;
  std::uint64_t phase_start_tsc_ = 0;

  double pacing_rate_;
  std::uint64_t window_;
};

}  // namespace pagewire::transport
