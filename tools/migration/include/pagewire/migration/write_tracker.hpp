// Which pages of ordinary process memory were written since the last look, for migrating a
// live workload rather than the guest model: userfaultfd write-protection in asynchronous
// mode (the kernel marks a written page and lifts its protection itself, so no fault ever
// reaches user space and the writer runs at full speed after its first write to a page),
// read and re-armed in one PAGEMAP_SCAN ioctl per look (Linux 6.7+). Where the kernel has
// only synchronous write-protection (5.7+; 5.14+ to populate the region first), each first
// write to a page in a round stops its writer for a fault that a handler thread records and
// resolves: correct, slower for the writer. create() picks what the kernel offers.
//
// A DirtyTracker: SourceMigration can migrate such a region with it (the live-workload
// example does).
//
// Threading: create(), start(), collect() and the destructor belong to one thread (the migration's
// control thread); any thread may write the region meanwhile. A write that races a
// collect() is reported by that collect() or the next, never lost: the scan reads a page's
// written bit and protects it again in one step under the page-table lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pagewire/migration/hooks.hpp"
#include "pagewire/migration/ram_block.hpp"
#include "pagewire/migration/tracker_group.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

enum class WriteTracking : std::uint8_t {
  kAuto,          // asynchronous where the kernel has it, else synchronous
  kAsynchronous,  // UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN, or an error
  kSynchronous,   // a fault per first write to a page in a round, handled by a thread
};

class WriteFaultHandler;

class WriteTracker final : public DirtyTracker {
 public:
  // Tracks `region`: page-aligned private anonymous memory (mmap'd, not DPDK's hugepages),
  // reported in pages of `page_size` bytes (a multiple of the system's page size). Every
  // page counts as clean from here on, populated or not.
  // Synchronous tracking populates every page of the region first (without changing it).
  // The region's page p is reported as page first_page + p: the region is one RAM block of
  // several (track_writes below).
  static Result<WriteTracker> create(std::span<std::byte> region, std::size_t page_size,
                                     WriteTracking mode = WriteTracking::kAuto, std::uint64_t first_page = 0);

  WriteTracker(WriteTracker&& other) noexcept;
  WriteTracker& operator=(WriteTracker&&) = delete;
  ~WriteTracker();  // stops tracking; the region is left writable

  // Counts every page clean again, forgetting what was written since create().
  Status start() override;
  // Marks in `pages` (first_page + the index into the region) the pages written since
  // create(), start() or the last collect(), and counts them clean again.
  Status collect(DirtyPages& pages) override;
  void stop() override {}  // the destructor lifts the protection

  std::uint64_t pages() const { return region_.size() / page_size_; }
  WriteTracking mode() const { return synchronous_ ? WriteTracking::kSynchronous : WriteTracking::kAsynchronous; }

 private:
  WriteTracker(std::span<std::byte> region, int uffd, int pagemap, std::size_t page_size, std::uint64_t first_page);
  Status arm(WriteTracking mode);
  Status scan(DirtyPages& pages);  // the asynchronous look

  std::span<std::byte> region_;
  int uffd_ = -1;
  int pagemap_ = -1;
  std::size_t page_size_;
  std::uint64_t first_page_;
  std::unique_ptr<WriteFaultHandler> synchronous_;  // null in asynchronous mode
};

// A guest's RAM blocks tracked as one: a WriteTracker per block, its pages numbered after
// the blocks before it (as MigrationMemory numbers them).
Result<TrackerGroup> track_writes(std::span<const RamBlock> ram, std::size_t page_size,
                                  WriteTracking mode = WriteTracking::kAuto);

}  // namespace pagewire::migration
