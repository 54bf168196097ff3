#include "pagewire/transport/retransmit_timer.hpp"

#include <algorithm>

namespace pagewire::transport {

RetransmitTimer::RetransmitTimer(Limits limits)
    : limits_(limits), rto_(std::clamp(limits.initial, limits.floor, limits.ceiling)) {}

void RetransmitTimer::on_ack(std::uint64_t rtt, bool progress) {
  if (rtt != 0) {
    if (srtt_ == 0) {
      srtt_ = rtt;
      rttvar_ = rtt / 2;
    } else {
      const std::uint64_t delta = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
      rttvar_ = (3 * rttvar_ + delta) / 4;
      srtt_ = (7 * srtt_ + rtt) / 8;
    }
  }
  if (rtt != 0 || progress) restart();
  if (progress) {
    fired_without_progress_ = 0;
    probe_unanswered_ = false;
  }
}

void RetransmitTimer::restart() {
  // RFC 6298's srtt + 4 rttvar, but never inside SACK's reordering window (1.25 srtt): on a
  // steady long path rttvar is tiny, and the timer would resend holes SACK is about to.
  const std::uint64_t estimate = srtt_ == 0 ? limits_.initial : srtt_ + std::max(4 * rttvar_, srtt_ / 2);
  rto_ = std::clamp(estimate, limits_.floor, limits_.ceiling);
}

RetransmitTimer::Wait RetransmitTimer::wait(bool all_sent) const {
  if (all_sent && srtt_ != 0 && !probe_unanswered_) {
    const std::uint64_t tail = 2 * srtt_ + limits_.ack_delay;
    if (tail < rto_) return {tail, true};
  }
  return {rto_, false};
}

void RetransmitTimer::on_fired(bool probe) {
  ++fired_without_progress_;
  if (probe) {
    probe_unanswered_ = true;
  } else {
    rto_ = std::min(2 * rto_, limits_.ceiling);
  }
}

}  // namespace pagewire::transport
