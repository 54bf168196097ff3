// The control thread's half of the streams' frame reserves (frame_reserve.hpp): at each
// look it adds a pool to every stream that asked for more frames, within the session's
// memory bound per stream. Cheap when nobody asked: three relaxed loads per stream.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagewire/transport/port.hpp"

namespace pagewire::transport {

class WindowGrowth {
 public:
  WindowGrowth() = default;
  WindowGrowth(const Port& port, std::uint16_t streams, std::uint64_t bound_bytes) : bound_bytes_(bound_bytes) {
    for (std::uint16_t s = 0; s < streams; ++s) reserves_.push_back(port.frame_reserve(s));
  }

  void look() {
    for (FrameReserve* reserve : reserves_) {
      auto grew = reserve->grow(bound_bytes_);
      if (!grew && note_.empty()) note_ = grew.error().message;
    }
  }
  // Why a window stopped short of what its stream asked for; empty if none did.
  const std::string& note() const { return note_; }

 private:
  std::vector<FrameReserve*> reserves_;
  std::uint64_t bound_bytes_ = 0;
  std::string note_;
};

}  // namespace pagewire::transport
