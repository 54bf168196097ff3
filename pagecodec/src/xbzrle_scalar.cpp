// The reference twin of the delta encoder: one byte at a time, obviously correct.
#include <cstring>

#include "pagewire/pagecodec/xbzrle.hpp"
#include "uleb128.hpp"

namespace pagewire::pagecodec::xbzrle {

std::size_t encode_scalar(const std::byte* current, std::byte* cache, std::size_t page_size,
                          std::span<std::byte> out) {
  std::size_t written = 0;
  std::size_t i = 0;
  while (i < page_size) {
    const std::size_t unchanged_start = i;
    std::byte byte = current[i];
    while (i < page_size && byte == cache[i]) {
      if (++i < page_size) byte = current[i];
    }
    if (i == page_size) break;  // trailing unchanged run is implicit

    const std::size_t changed_start = i;
    while (i < page_size && byte != cache[i]) {
      cache[i] = byte;  // the cache takes exactly the byte we emit
      if (++i < page_size) byte = current[i];
    }
    const std::size_t changed = i - changed_start;
    if (written + 2 * kMaxUlebBytes + changed > out.size()) return kOverflow;
    written += uleb128::put(&out[written], static_cast<std::uint32_t>(changed_start - unchanged_start));
    written += uleb128::put(&out[written], static_cast<std::uint32_t>(changed));
    std::memcpy(&out[written], cache + changed_start, changed);
    written += changed;
  }
  return written;
}

}  // namespace pagewire::pagecodec::xbzrle
