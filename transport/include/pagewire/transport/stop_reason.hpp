// A reason to stop, set once from any thread (a signal watcher, an embedder's cancel, a
// stream core that received ABORT) and read from any other. The first set() wins; nothing
// is allocated, so a stream core may set it on the data path.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <string>
#include <string_view>

namespace pagewire::transport {

class StopReason {
 public:
  static constexpr std::size_t kMaxBytes = 255;

  // Any thread. False when a reason was set already (that one stands). Longer reasons are
  // cut at kMaxBytes.
  bool set(std::string_view reason) {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return false;
    length_ = std::min(reason.size(), kMaxBytes);
    std::copy_n(reason.data(), length_, text_.data());
    set_.store(true, std::memory_order_release);
    return true;
  }
  bool is_set() const { return set_.load(std::memory_order_acquire); }
  // Once is_set() has returned true; empty before.
  std::string reason() const { return is_set() ? std::string(text_.data(), length_) : std::string(); }

 private:
  std::atomic<bool> claimed_{false};
  std::atomic<bool> set_{false};
  std::size_t length_ = 0;
  std::array<char, kMaxBytes> text_{};
};

}  // namespace pagewire::transport
