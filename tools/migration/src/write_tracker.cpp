#include "pagewire/migration/write_tracker.hpp"

#include <sys/mman.h>

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "write_fault_handler.hpp"

namespace pagewire::migration {

namespace {

// Linux 6.7 UAPI that Debian 12's kernel headers (6.1) predate: <linux/userfaultfd.h>'s
// asynchronous write-protection and <linux/fs.h>'s PAGEMAP_SCAN, as the kernel defines
// them (a running kernel that lacks them refuses the feature bits or the ioctl, and
// start() says so).
constexpr std::uint64_t kFeatureWpUnpopulated = 1u << 13;  // UFFD_FEATURE_WP_UNPOPULATED
constexpr std::uint64_t kFeatureWpAsync = 1u << 15;        // UFFD_FEATURE_WP_ASYNC
constexpr std::uint64_t kPageIsWritten = 1u << 1;          // PAGE_IS_WRITTEN
constexpr std::uint64_t kScanWpMatching = 1u << 0;         // PM_SCAN_WP_MATCHING
constexpr std::uint64_t kScanCheckWpAsync = 1u << 1;       // PM_SCAN_CHECK_WPASYNC

struct PageRegion {  // struct page_region
  std::uint64_t start, end, categories;
};
static_assert(sizeof(PageRegion) == 24);

struct ScanArgument {  // struct pm_scan_arg
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  std::uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
static_assert(sizeof(ScanArgument) == 96);

constexpr unsigned long kPagemapScan = _IOWR('f', 16, ScanArgument);  // PAGEMAP_SCAN

Error system_error(const std::string& what) { return make_error(what + ": " + std::strerror(errno)); }

uffdio_range range_of(std::span<std::byte> region) {
  return {reinterpret_cast<std::uintptr_t>(region.data()), region.size()};
}

}  // namespace

Result<WriteTracker> WriteTracker::create(std::span<std::byte> region, std::size_t page_size, WriteTracking mode,
                                          std::uint64_t first_page) {
  const auto system_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  if (page_size == 0 || page_size % system_page != 0) {
    return make_error("write tracking: pages of " + std::to_string(page_size) + " bytes; expected a multiple of " +
                      std::to_string(system_page));
  }
  // Aligned as the kernel protects it; whole pages of ours, counted from the region's start.
  if (region.empty() || reinterpret_cast<std::uintptr_t>(region.data()) % system_page != 0 ||
      region.size() % page_size != 0) {
    return make_error(ErrorCode::kConfiguration, "write tracking: the region must start on a " +
                                                     std::to_string(system_page) + "-byte boundary and be whole pages of " +
                                                     std::to_string(page_size) + " bytes");
  }
  const int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) {
    return system_error("write tracking: userfaultfd() (root, or vm.unprivileged_userfaultfd=1, is needed)");
  }
  WriteTracker tracker(region, uffd, -1, page_size, first_page);  // closes what it holds on any return below
  if (Status armed = tracker.arm(mode); !armed) return armed.error();
  return tracker;
}

Status WriteTracker::arm(WriteTracking mode) {
  uffdio_api api{.api = UFFD_API, .features = kFeatureWpAsync | kFeatureWpUnpopulated, .ioctls = 0};
  const bool asynchronous = mode != WriteTracking::kSynchronous && ioctl(uffd_, UFFDIO_API, &api) == 0 &&
                            (api.features & kFeatureWpAsync) != 0;
  if (!asynchronous) {
    if (mode == WriteTracking::kAsynchronous) {
      return make_error(ErrorCode::kSystem, "write tracking: this kernel has no asynchronous userfaultfd "
                                            "write-protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7+)");
    }
    // A failed UFFDIO_API leaves the descriptor unusable: synchronous mode starts afresh.
    close(uffd_);
    uffd_ = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    api = uffdio_api{.api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP, .ioctls = 0};
    if (uffd_ < 0 || ioctl(uffd_, UFFDIO_API, &api) != 0) {
      return system_error("write tracking: userfaultfd write-protection (Linux 5.7+)");
    }
    // Protection only holds on pages that are there: populate them, contents unchanged.
    if (madvise(region_.data(), region_.size(), MADV_POPULATE_WRITE) != 0) {
      return system_error("write tracking: populating the region (MADV_POPULATE_WRITE, Linux 5.14+)");
    }
  }
  uffdio_register registration{.range = range_of(region_), .mode = UFFDIO_REGISTER_MODE_WP, .ioctls = 0};
  if (ioctl(uffd_, UFFDIO_REGISTER, &registration) != 0) {
    return system_error("write tracking: registering the region for write-protection (private anonymous memory "
                        "only)");
  }
  uffdio_writeprotect protect{.range = range_of(region_), .mode = UFFDIO_WRITEPROTECT_MODE_WP};
  if (ioctl(uffd_, UFFDIO_WRITEPROTECT, &protect) != 0) return system_error("write tracking: write-protecting the region");
  if (!asynchronous) {
    auto handler = WriteFaultHandler::start(uffd_, region_, page_size_);
    if (!handler) return handler.error();
    synchronous_ = std::move(handler).value();
    return Ok{};
  }
  pagemap_ = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pagemap_ < 0) return system_error("write tracking: opening /proc/self/pagemap");
  return Ok{};
}

WriteTracker::WriteTracker(std::span<std::byte> region, int uffd, int pagemap, std::size_t page_size,
                           std::uint64_t first_page)
    : region_(region), uffd_(uffd), pagemap_(pagemap), page_size_(page_size), first_page_(first_page) {}

WriteTracker::WriteTracker(WriteTracker&& other) noexcept
    : region_(other.region_),
      uffd_(std::exchange(other.uffd_, -1)),
      pagemap_(std::exchange(other.pagemap_, -1)),
      page_size_(other.page_size_),
      first_page_(other.first_page_),
      synchronous_(std::move(other.synchronous_)) {}

WriteTracker::~WriteTracker() {
  synchronous_.reset();  // its thread reads uffd_: gone before the descriptor
  if (uffd_ >= 0) {
    uffdio_range range = range_of(region_);
    ioctl(uffd_, UFFDIO_UNREGISTER, &range);  // lifts the protection
    close(uffd_);
  }
  if (pagemap_ >= 0) close(pagemap_);
}

Status WriteTracker::start() {
  DirtyPages forgotten(first_page_ + pages());
  return collect(forgotten);
}

Status WriteTracker::collect(DirtyPages& pages) {
  return synchronous_ ? synchronous_->collect(pages, first_page_) : scan(pages);
}

Status WriteTracker::scan(DirtyPages& pages) {
  const auto base = reinterpret_cast<std::uintptr_t>(region_.data());
  const std::uint64_t end = base + region_.size();
  std::array<PageRegion, 512> found{};
  // Each call reports (and protects again) written runs from `from` on until its vector is
  // full, and says where it stopped.
  for (std::uint64_t from = base; from < end;) {
    ScanArgument scan{.size = sizeof(ScanArgument),
                      .flags = kScanWpMatching | kScanCheckWpAsync,
                      .start = from,
                      .end = end,
                      .walk_end = 0,
                      .vec = reinterpret_cast<std::uintptr_t>(found.data()),
                      .vec_len = found.size(),
                      .max_pages = 0,
                      .category_inverted = 0,
                      .category_mask = kPageIsWritten,
                      .category_anyof_mask = 0,
                      .return_mask = kPageIsWritten};
    const int runs = ioctl(pagemap_, kPagemapScan, &scan);
    if (runs < 0) return system_error("write tracking: PAGEMAP_SCAN (Linux 6.7+)");
    for (int r = 0; r < runs; ++r) {
      // Runs are in system pages; a page of ours is written if any of its system pages is.
      const std::uint64_t first = (found[r].start - base) / page_size_;
      const std::uint64_t last = (found[r].end - 1 - base) / page_size_;
      if (Status marked = pages.mark_range(first_page_ + first, last - first + 1); !marked) return marked;
    }
    if (scan.walk_end <= from) return make_error("write tracking: PAGEMAP_SCAN made no progress");
    from = scan.walk_end;
  }
  return Ok{};
}

Result<TrackerGroup> track_writes(std::span<const RamBlock> ram, std::size_t page_size, WriteTracking mode) {
  TrackerGroup group;
  std::uint64_t first_page = 0;
  for (const RamBlock& block : ram) {
    auto tracker = WriteTracker::create({block.host, block.bytes}, page_size, mode, first_page);
    if (!tracker) return tracker.error();
    group.add(std::make_unique<WriteTracker>(std::move(tracker).value()));
    first_page += block.bytes / page_size;
  }
  return group;
}

}  // namespace pagewire::migration
