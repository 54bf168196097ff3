// The library's bitmap of written pages, filled by a DirtyTracker's collect(): one bit per
// guest page, owned by the migration's control thread (not atomic; the DirtyLog is the
// atomic one that writer threads mark).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::migration {

class DirtyPages {
 public:
  explicit DirtyPages(std::uint64_t pages) : words_((pages + 63) / 64), pages_(pages) {}

  // Pages past the guest's end are an error: a tracker that reports them is tracking
  // something else.
  Status mark(std::uint64_t page);
  Status mark_range(std::uint64_t first_page, std::uint64_t count);
  // Folds in a KVM_GET_DIRTY_LOG-style bitmap in one call: bit i (of 64-bit words, least
  // significant bit first, as the kernel lays it out) is page first_page + i. `pages` bits
  // are read; a memory slot that starts mid-word costs nothing extra.
  Status merge_bitmap(std::uint64_t first_page, std::span<const std::uint64_t> words, std::uint64_t pages);

  // Appends the marked pages, ascending, to `out` and clears them.
  void drain(std::vector<std::uint64_t>* out);
  std::uint64_t pages() const { return pages_; }

 private:
  std::vector<std::uint64_t> words_;
  std::uint64_t pages_;
};

}  // namespace pagewire::migration
