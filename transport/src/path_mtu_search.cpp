#include "pagewire/transport/path_mtu_search.hpp"

#include <algorithm>

namespace pagewire::transport {

PathMtuSearch::PathMtuSearch(std::uint16_t floor, std::uint16_t top, std::uint16_t known_good, Start start,
                             std::uint32_t tries_per_size)
    : floor_(floor),
      top_(std::max(floor, top)),
      good_(known_good >= floor && known_good <= top_ ? known_good : 0),
      bad_(std::uint32_t{top_} + 1),
      testing_(start == Start::kTop || good_ != 0 ? top_ : floor_),
      tries_per_size_(std::max<std::uint32_t>(tries_per_size, 1)) {}

PathMtuSearch::Next PathMtuSearch::on_answered() {
  good_ = std::max(good_, testing_);
  return next();
}

PathMtuSearch::Next PathMtuSearch::on_unanswered() {
  if (++tries_ < tries_per_size_) return Next::kProbe;  // the same size again
  bad_ = std::min<std::uint32_t>(bad_, testing_);
  if (testing_ == top_) top_failed_ = true;
  return next();
}

// The floor settles whether anything passes; the top whether the size in use (or hoped
// for) does; between them a binary search.
PathMtuSearch::Next PathMtuSearch::next() {
  tries_ = 0;
  if (good_ == 0) {
    if (bad_ <= floor_) return Next::kFailed;
    testing_ = floor_;
    return Next::kProbe;
  }
  const bool top_settled = good_ == top_ || bad_ <= top_;
  if (!top_settled) {
    testing_ = top_;
    return Next::kProbe;
  }
  if (bad_ - good_ <= kResolution) return Next::kDone;
  testing_ = static_cast<std::uint16_t>((good_ + bad_) / 2);
  return Next::kProbe;
}

}  // namespace pagewire::transport
