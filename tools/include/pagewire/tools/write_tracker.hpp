// Which pages of ordinary process memory were written since the last look, for migrating a
// live workload rather than the guest model: userfaultfd write-protection in asynchronous
// mode (the kernel marks a written page and lifts its protection itself, so no fault ever
// reaches user space and the writer runs at full speed after its first write to a page),
// read and re-armed in one PAGEMAP_SCAN ioctl per look. Needs Linux 6.7+ (both features);
// on an older kernel start() says so.
//
// Threading: start(), collect() and the destructor belong to one thread (the migration's
// control thread); any thread may write the region meanwhile. A write that races a
// collect() is reported by that collect() or the next, never lost: the scan reads a page's
// written bit and protects it again in one step under the page-table lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::tools {

class WriteTracker {
 public:
  // Tracks `region`: page-aligned private anonymous memory (mmap'd, not DPDK's hugepages).
  // Every page counts as clean from here on, populated or not.
  static Result<WriteTracker> start(std::span<std::byte> region);

  WriteTracker(WriteTracker&& other) noexcept;
  WriteTracker& operator=(WriteTracker&&) = delete;
  ~WriteTracker();  // stops tracking; the region is left writable

  // Appends the pages (indices into the region, ascending) written since start() or the
  // last collect(), and counts them clean again.
  Status collect(std::vector<std::uint64_t>* pages);

  std::uint64_t pages() const { return region_.size() / page_size_; }

 private:
  WriteTracker(std::span<std::byte> region, int uffd, int pagemap, std::size_t page_size)
      : region_(region), uffd_(uffd), pagemap_(pagemap), page_size_(page_size) {}

  std::span<std::byte> region_;
  int uffd_ = -1;
  int pagemap_ = -1;
  std::size_t page_size_;
};

}  // namespace pagewire::tools
