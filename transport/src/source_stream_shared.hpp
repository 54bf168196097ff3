// What SourceStream's source files share (source_stream*.cpp).
#pragma once

#include <cstdint>

namespace pagewire::transport::source_stream {

inline constexpr std::uint16_t kMaxBurst = 64;
// Unanswered probes before a size counts as failed (RFC 8899's MAX_PROBES): one lost probe
// on a busy path must not shrink the MTU.
inline constexpr std::uint32_t kProbeTries = 3;

inline std::uint64_t us_to_tsc(std::uint64_t us, std::uint64_t hz) { return us * hz / 1000000; }

}  // namespace pagewire::transport::source_stream
