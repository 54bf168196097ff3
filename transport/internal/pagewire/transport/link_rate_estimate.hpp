// What the path delivers for one stream when the stream offers more than the path takes:
// the link rate the adaptive codec policy weighs deflate against raw with, measured instead
// of typed in (pagecodec::AdaptivePolicy::link_bytes_per_second 0).
//
// The stream reports after every poll how many bytes the peer has acknowledged so far and
// whether the path held it back in that poll (its window was full or its rate cap had no
// tokens). Over intervals of at least a millisecond and a round trip, an interval in which
// the path held the sender back in most polls measures the path: its delivery rate is
// blended in. An interval in which the sender ran short of frames measures the sender, so it
// only raises the estimate (the path carried at least that much) and never lowers it: a
// stream that deflates because the link is slow stays CPU-bound, and must not conclude the
// link got slower still. Pure logic: time and counts in, a rate out (unit-tested without EAL).
// Owned by the stream's core.
#pragma once

#include <algorithm>
#include <cstdint>

namespace pagewire::transport {

class LinkRateEstimate {
 public:
  explicit LinkRateEstimate(std::uint64_t tsc_hz) : tsc_hz_(tsc_hz) {}

  // After a poll. Returns true when the estimate changed.
  bool on_poll(std::uint64_t now_tsc, std::uint64_t acked_bytes, bool held_by_path, std::uint64_t srtt_tsc) {
    if (start_tsc_ == 0) {
      restart(now_tsc, acked_bytes);
      return false;
    }
    ++polls_;
    held_polls_ += held_by_path ? 1 : 0;
    const std::uint64_t elapsed = now_tsc - start_tsc_;
    if (elapsed < std::max(tsc_hz_ / 1000, srtt_tsc)) return false;
    const double rate = static_cast<double>(acked_bytes - start_acked_) * static_cast<double>(tsc_hz_) /
                        static_cast<double>(elapsed);
    const bool path_bound = 2 * held_polls_ > polls_;
    restart(now_tsc, acked_bytes);
    if (rate <= 0) return false;
    const double before = estimate_;
    if (path_bound) {
      estimate_ = estimate_ == 0 ? rate : estimate_ + kWeight * (rate - estimate_);
    } else {
      estimate_ = std::max(estimate_, rate);
    }
    return estimate_ != before;
  }

  // Bytes per second; 0 until the path has been measured.
  double bytes_per_second() const { return estimate_; }

 private:
  static constexpr double kWeight = 0.25;  // EWMA weight of a path-bound interval

  void restart(std::uint64_t now_tsc, std::uint64_t acked_bytes) {
    start_tsc_ = now_tsc;
    start_acked_ = acked_bytes;
    polls_ = held_polls_ = 0;
  }

  std::uint64_t tsc_hz_;
  std::uint64_t start_tsc_ = 0;
  std::uint64_t start_acked_ = 0;
  std::uint64_t polls_ = 0, held_polls_ = 0;
  double estimate_ = 0;
};

}  // namespace pagewire::transport
