#pragma once
// The path-MTU search (RFC 8899 in spirit) as plain logic: the caller sends a probe of
// `testing()` bytes with DF set, then reports whether it was answered; the search says what
// to probe next. No frames, no clocks: the connect handshake drives it by waiting, a source
// stream by its poll loop, and unit tests by hand.

#include <cstdint>

namespace pagewire::transport {

class PathMtuSearch {
 public:
  // Which end of the range is probed first. From the top at connect and when looking for a
  // larger MTU again (the common answer is "it passes"); from the floor after a black hole,
  // where small probes first tell a path that shrank from a peer that went away.
  enum class Start { kTop, kFloor };

  // What the caller does after a verdict.
  enum class Next {
    kProbe,   // probe testing() (the same size again, or another)
    kDone,    // settled: largest_passing() is the path MTU
    kFailed,  // not even the floor passes
  };

  // Searches sizes in [floor, top], to within kResolution bytes. `known_good` is a size
  // already known to pass (0: none), so the floor need not be probed. A size fails after
  // `tries_per_size` unanswered probes: one lost probe on a busy path must not shrink it.
  PathMtuSearch(std::uint16_t floor, std::uint16_t top, std::uint16_t known_good, Start start,
                std::uint32_t tries_per_size);

  std::uint16_t testing() const { return testing_; }
  std::uint16_t largest_passing() const { return good_; }
  // The top was probed and failed: frames of that size do not pass the path (now).
  bool top_failed() const { return top_failed_; }

  Next on_answered();
  Next on_unanswered();

  static constexpr std::uint16_t kResolution = 8;

 private:
  Next next();

  std::uint16_t floor_, top_;
  std::uint16_t good_;       // largest size known to pass (0: none)
  std::uint32_t bad_;        // smallest size known not to pass (top + 1: none)
  std::uint16_t testing_;
  std::uint32_t tries_per_size_;
  std::uint32_t tries_ = 0;  // unanswered probes at testing_
  bool top_failed_ = false;
};

}  // namespace pagewire::transport
