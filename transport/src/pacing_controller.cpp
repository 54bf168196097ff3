#include "pagewire/transport/pacing_controller.hpp"

#include <algorithm>

namespace pagewire::transport {

namespace {

constexpr double kStartupGain = 2.885;  // 2 / ln 2: doubles the delivery rate every round
constexpr double kProbeGains[] = {1.25, 0.75, 1, 1, 1, 1, 1, 1};
constexpr int kProbePhases = 8;
constexpr double kFullBandwidthGrowth = 1.25;
constexpr int kFullBandwidthRounds = 3;
constexpr std::uint64_t kMinRttWindowSeconds = 10;
// BBR's floor is 4 packets. Here it is the initial window: on a shared or virtualised host
// the estimate can collapse while a core is descheduled, and a window of 4 frames then
// recovers from loss one timeout at a time. Pacing, not the window, keeps the queue short.
constexpr std::uint32_t kMinWindowFrames = PacingController::kInitialWindowFrames;

}  // namespace

PacingController::PacingController(std::uint64_t tsc_hz, std::uint32_t frame_bytes, std::uint64_t initial_rtt_tsc)
    : tsc_hz_(tsc_hz),
      frame_bytes_(frame_bytes),
      pacing_gain_(kStartupGain),
      window_gain_(kStartupGain),
      min_rtt_(std::max<std::uint64_t>(initial_rtt_tsc, 1)),
      pacing_rate_(kStartupGain * kInitialWindowFrames * frame_bytes * static_cast<double>(tsc_hz) /
                   static_cast<double>(min_rtt_)),
      window_(std::uint64_t{kInitialWindowFrames} * frame_bytes) {}

double PacingController::bottleneck_bytes_per_second() const {
  return *std::max_element(round_max_.begin(), round_max_.end());
}

void PacingController::on_app_limited(std::uint64_t inflight_bytes) {
  app_limited_until_ = std::max<std::uint64_t>(delivered_ + inflight_bytes, 1);
}

DeliveryStamp PacingController::on_send(std::uint64_t now, std::uint64_t inflight_bytes) {
  if (inflight_bytes == 0 || delivered_tsc_ == 0) {
    // Nothing in flight: the interval starts now, not at the last ACK of a quiet spell.
    first_sent_tsc_ = now;
    delivered_tsc_ = now;
  }
  return DeliveryStamp{.delivered = delivered_,
                       .delivered_tsc = delivered_tsc_,
                       .first_sent_tsc = first_sent_tsc_,
                       .app_limited = app_limited_until_ != 0};
}

void PacingController::on_ack(std::uint64_t now, std::uint64_t bytes, const DeliveryStamp& youngest,
                              std::uint64_t youngest_sent_tsc, std::uint64_t rtt_tsc, std::uint64_t inflight_bytes) {
  if (bytes == 0) return;
  delivered_ += bytes;
  delivered_tsc_ = now;
  if (app_limited_until_ != 0 && delivered_ > app_limited_until_) app_limited_until_ = 0;

  if (rtt_tsc != 0 && (rtt_tsc <= min_rtt_ || now - min_rtt_stamp_ > kMinRttWindowSeconds * tsc_hz_)) {
    min_rtt_ = rtt_tsc;
    min_rtt_stamp_ = now;
  }
  if (youngest.delivered >= next_round_delivered_) new_round(now);

  // The rate over the longer of the send and the ACK intervals: neither a burst sent at
  // once nor ACKs arriving together makes the path look faster than it is.
  first_sent_tsc_ = youngest_sent_tsc;
  const std::uint64_t send_interval = youngest_sent_tsc - youngest.first_sent_tsc;
  const std::uint64_t ack_interval = now - youngest.delivered_tsc;
  const std::uint64_t interval = std::max(send_interval, ack_interval);
  if (youngest.delivered_tsc != 0 && interval >= min_rtt_ / 4 && interval > 0) {  // shorter intervals are noise
    const double rate = static_cast<double>(delivered_ - youngest.delivered) * static_cast<double>(tsc_hz_) /
                        static_cast<double>(interval);
    double& slot = round_max_[round_ % kBandwidthRounds];
    if (!youngest.app_limited || rate > bottleneck_bytes_per_second()) slot = std::max(slot, rate);
  }

  measure_aggregation(now, bytes);
  const double bandwidth = bottleneck_bytes_per_second();
  const double bdp = bandwidth * static_cast<double>(min_rtt_) / static_cast<double>(tsc_hz_);
  if (mode_ == Mode::kDrain && static_cast<double>(inflight_bytes) <= bdp) {
    mode_ = Mode::kProbeBandwidth;
    probe_phase_ = 1;  // start cruising; the 1.25x probe comes round within eight RTTs
    next_phase(now);
  }
  if (mode_ == Mode::kProbeBandwidth && now - phase_start_tsc_ > min_rtt_) next_phase(now);
  update_targets();
}

void PacingController::on_loss(std::uint64_t bytes) {
  round_lost_ += bytes;
  if (mode_ != Mode::kStartup || bottleneck_bytes_per_second() <= 0) return;
  constexpr double kStartupLossShare = 0.02;
  constexpr std::uint64_t kStartupLossFrames = 8;
  const std::uint64_t round_delivered = std::max<std::uint64_t>(delivered_ - round_start_delivered_, frame_bytes_);
  if (round_lost_ >= kStartupLossFrames * frame_bytes_ &&
      static_cast<double>(round_lost_) > kStartupLossShare * static_cast<double>(round_delivered)) {
    full_bandwidth_ = bottleneck_bytes_per_second();
    mode_ = Mode::kDrain;
    update_targets();
  }
}

void PacingController::next_phase(std::uint64_t now) {
  probe_phase_ = (probe_phase_ + 1) % kProbePhases;
  phase_start_tsc_ = now;
}

void PacingController::measure_aggregation(std::uint64_t now, std::uint64_t bytes) {
  const double bandwidth = bottleneck_bytes_per_second();
  if (bandwidth <= 0) return;
  const double expected =
      bandwidth * static_cast<double>(now - aggregation_start_tsc_) / static_cast<double>(tsc_hz_);
  // An epoch ends when ACKs fall behind the bandwidth: the burst is over.
  if (aggregation_start_tsc_ == 0 || static_cast<double>(aggregation_bytes_) <= expected) {
    aggregation_start_tsc_ = now;
    aggregation_bytes_ = 0;
  }
  aggregation_bytes_ += bytes;
  const double extra = static_cast<double>(aggregation_bytes_) -
                       bandwidth * static_cast<double>(now - aggregation_start_tsc_) / static_cast<double>(tsc_hz_);
  const double cap = bandwidth * 0.1;  // 100 ms worth at most, as BBR
  auto& slot = round_extra_[round_ % kBandwidthRounds];
  slot = std::max(slot, static_cast<std::uint64_t>(std::clamp(extra, 0.0, cap)));
}

void PacingController::new_round(std::uint64_t) {
  ++round_;
  round_start_delivered_ = next_round_delivered_ = delivered_;
  round_lost_ = 0;
  // The bandwidth of the round that just ended decides whether start-up goes on.
  if (mode_ == Mode::kStartup && app_limited_until_ == 0) {
    const double bandwidth = bottleneck_bytes_per_second();
    if (bandwidth >= full_bandwidth_ * kFullBandwidthGrowth) {
      full_bandwidth_ = bandwidth;
      rounds_without_growth_ = 0;
    } else if (++rounds_without_growth_ >= kFullBandwidthRounds) {
      mode_ = Mode::kDrain;
    }
  }
  round_max_[round_ % kBandwidthRounds] = 0;
  round_extra_[round_ % kBandwidthRounds] = 0;
}

void PacingController::update_targets() {
  switch (mode_) {
    case Mode::kStartup:
      pacing_gain_ = window_gain_ = kStartupGain;
      break;
    case Mode::kDrain:
      pacing_gain_ = 1 / kStartupGain;
      window_gain_ = kStartupGain;
      break;
    case Mode::kProbeBandwidth:
      pacing_gain_ = kProbeGains[probe_phase_];
      window_gain_ = 2;
      break;
  }
  const double bandwidth = bottleneck_bytes_per_second();
  if (bandwidth <= 0) return;  // keep the initial rate until a sample comes
  const double bdp = bandwidth * static_cast<double>(min_rtt_) / static_cast<double>(tsc_hz_);
  pacing_rate_ = pacing_gain_ * bandwidth;
  const std::uint64_t extra = *std::max_element(round_extra_.begin(), round_extra_.end());
  window_ = std::max<std::uint64_t>(static_cast<std::uint64_t>(window_gain_ * bdp) + extra,
                                    std::uint64_t{kMinWindowFrames} * frame_bytes_);
}

}  // namespace pagewire::transport
