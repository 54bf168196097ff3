#include "lazy_pages.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace pagewire::migration {

namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

Error system_error(const std::string& what) {
  return make_error(ErrorCode::kSystem, "postcopy: " + what + ": " + std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<LazyPages>> LazyPages::start(std::span<std::byte> region, std::size_t page_size,
                                                    std::span<const PageRun> missing, OnMissing on_missing) {
  const auto system_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  if (region.empty() || page_size == 0 || page_size % system_page != 0 ||
      reinterpret_cast<std::uintptr_t>(region.data()) % system_page != 0 || region.size() % page_size != 0) {
    return make_error(ErrorCode::kConfiguration, "postcopy: the region must start on a " + std::to_string(system_page) +
                                                     "-byte boundary and be whole pages of " + std::to_string(page_size) +
                                                     " bytes");
  }
  const std::uint64_t pages = region.size() / page_size;
  std::uint64_t after_last = 0;
  for (const PageRun& run : missing) {
    if (run.count == 0 || run.first < after_last || run.first > pages || run.count > pages - run.first) {
      return make_error(ErrorCode::kConfiguration, "postcopy: missing pages " + std::to_string(run.first) + " +" +
                                                       std::to_string(run.count) + " are empty, out of order or outside "
                                                       "the region of " + std::to_string(pages) + " pages");
    }
    after_last = run.first + run.count;
  }
  const int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) return system_error("userfaultfd() (root, or vm.unprivileged_userfaultfd=1, is needed)");
  std::unique_ptr<LazyPages> lazy(new LazyPages(region, page_size, uffd, std::move(on_missing)));
  if (lazy->faulted_at_ns_ == nullptr) return system_error("no memory for the fault times of " + std::to_string(pages) + " pages");
  if (Status armed = lazy->arm(missing); !armed) return armed.error();
  return lazy;
}

// Registered before the pages are dropped, so no touch in between reads a zero page.
Status LazyPages::arm(std::span<const PageRun> missing) {
  uffdio_api api{.api = UFFD_API, .features = 0, .ioctls = 0};
  if (ioctl(uffd_, UFFDIO_API, &api) != 0) return system_error("UFFDIO_API");
  uffdio_register registration{
      .range = {reinterpret_cast<std::uintptr_t>(region_.data()), region_.size()},
      .mode = UFFDIO_REGISTER_MODE_MISSING,
      .ioctls = 0};
  if (ioctl(uffd_, UFFDIO_REGISTER, &registration) != 0) {
    return system_error("registering the region for missing pages (private anonymous memory only)");
  }
  for (const PageRun& run : missing) {
    if (madvise(region_.data() + run.first * page_size_, run.count * page_size_, MADV_DONTNEED) != 0) {
      return system_error("dropping the pages not yet current");
    }
  }
  auto thread = FaultThread::start(
      uffd_, [this](const PageFault& fault) { on_fault(fault); }, "postcopy");
  if (!thread) return thread.error();
  thread_ = std::move(thread).value();
  return Ok{};
}

LazyPages::~LazyPages() {
  thread_.reset();
  uffdio_range range{reinterpret_cast<std::uintptr_t>(region_.data()), region_.size()};
  ioctl(uffd_, UFFDIO_UNREGISTER, &range);  // wakes anyone still waiting
  close(uffd_);
}

void LazyPages::on_fault(const PageFault& fault) {
  const auto base = reinterpret_cast<std::uintptr_t>(region_.data());
  if (fault.address < base || fault.address >= base + region_.size()) return;  // not this region's
  faults_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t page = (fault.address - base) / page_size_;
  std::uint64_t none = 0;  // a fault reported again keeps the first report's time
  faulted_at(page).compare_exchange_strong(none, now_ns(), std::memory_order_relaxed);
  on_missing_(page);
}

// One page: a run of one (what a fetcher answering a single fault places).
Result<LazyPages::Installed> LazyPages::install(std::uint64_t page, const std::byte* bytes) {
  auto placed = install_run(page, 1, bytes);
  if (!placed) return placed.error();
  return *placed == 1 ? Installed::kInstalled : Installed::kAlreadyPresent;
}

Result<LazyPages::Installed> LazyPages::install_zero(std::uint64_t page) { return install(page, nullptr); }

// The kernel fills a run page by page and stops at the first page already there (EEXIST)
// or when interrupted (EAGAIN), saying how many bytes it filled: those pages are in, the one
// present is skipped, and the rest goes again.
Result<std::uint64_t> LazyPages::install_run(std::uint64_t first, std::uint64_t count, const std::byte* bytes) {
  if (count == 0) return std::uint64_t{0};
  if (Status inside = check_run(first, count); !inside) return inside.error();
  std::uint64_t done = 0, installed_pages = 0;
  while (done < count) {
    const std::uint64_t page = first + done;
    const std::uint64_t length = (count - done) * page_size_;
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(region_.data()) + page * page_size_;
    long result = 0;
    std::int64_t filled = 0;
    if (bytes == nullptr) {
      uffdio_zeropage zero{.range = {at, length}, .mode = 0, .zeropage = 0};
      result = ioctl(uffd_, UFFDIO_ZEROPAGE, &zero);
      filled = zero.zeropage;
    } else {
      const auto from = reinterpret_cast<std::uintptr_t>(bytes + done * page_size_);
      uffdio_copy copy{.dst = at, .src = from, .len = length, .mode = 0, .copy = 0};
      result = ioctl(uffd_, UFFDIO_COPY, &copy);
      filled = copy.copy;
    }
    const std::uint64_t pages_in = result == 0 ? count - done : static_cast<std::uint64_t>(std::max<std::int64_t>(filled, 0)) / page_size_;
    for (std::uint64_t p = page; p < page + pages_in; ++p) note_wait(p);
    installed_pages += pages_in;
    done += pages_in;
    if (result == 0) break;
    if (errno == EEXIST) ++done;  // that page keeps what it holds
    else if (errno != EAGAIN) return system_error("installing pages " + std::to_string(page) + " +" + std::to_string(count - done));
  }
  return installed_pages;
}

// Written so that no first and count, however large, wrap around.
Status LazyPages::check_run(std::uint64_t first, std::uint64_t count) const {
  const std::uint64_t pages = region_.size() / page_size_;
  if (first < pages && count <= pages - first) return Ok{};
  const std::uint64_t outside = first < pages ? pages : first;
  return make_error(ErrorCode::kConfiguration, "postcopy: page " + std::to_string(outside) + " is outside the region of " +
                                                   std::to_string(pages) + " pages");
}

// A page that a thread was waiting for: how long since its fault was reported.
void LazyPages::note_wait(std::uint64_t page) {
  const std::uint64_t faulted = faulted_at(page).exchange(0, std::memory_order_relaxed);
  if (faulted == 0) return;  // pushed before anyone touched it
  waits_.add(now_ns() - faulted);
}

}  // namespace pagewire::migration
