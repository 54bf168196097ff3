// ULEB128 lengths as QEMU's xbzrle writes them. Internal to pagecodec.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagewire::pagecodec::uleb128 {

// Writes `value` (< 2^21) and returns the number of bytes written (1..3).
inline std::size_t put(std::byte* out, std::uint32_t value) {
  std::size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<std::byte>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  out[n++] = static_cast<std::byte>(value);
  return n;
}

// Reads one canonical length of at most max_bytes bytes from [in, end). Returns the number
// of bytes consumed, or 0 when truncated, overlong or non-canonical (a redundant 0 byte).
inline std::size_t get(const std::byte* in, const std::byte* end, std::size_t max_bytes,
                       std::uint32_t* value) {
  std::uint32_t result = 0;
  for (std::size_t i = 0; i < max_bytes && in + i < end; ++i) {
    const auto byte = static_cast<std::uint8_t>(in[i]);
    result |= static_cast<std::uint32_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      if (i > 0 && byte == 0) return 0;
      *value = result;
      return i + 1;
    }
  }
  return 0;
}

}  // namespace pagewire::pagecodec::uleb128
