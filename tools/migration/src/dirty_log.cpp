#include "pagewire/migration/dirty_log.hpp"

#include <algorithm>

namespace pagewire::migration {

Status DirtyLog::collect(DirtyPages& pages) {
  for (std::size_t w = 0; w < words_.size(); ++w) {
    const std::uint64_t bits = words_[w].exchange(0, std::memory_order_acquire);
    if (bits == 0) continue;
    const std::uint64_t first = w * 64;
    if (Status merged = pages.merge_bitmap(first, std::span(&bits, 1), std::min<std::uint64_t>(64, pages_ - first));
        !merged) {
      return merged;
    }
  }
  return Ok{};
}

}  // namespace pagewire::migration
