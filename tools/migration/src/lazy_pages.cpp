#include "lazy_pages.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace pagewire::migration {

namespace {

Error system_error(const std::string& what) {
  return make_error(ErrorCode::kSystem, "postcopy: " + what + ": " + std::strerror(errno));
}

}  // namespace

Result<std::unique_ptr<LazyPages>> LazyPages::start(std::span<std::byte> region, std::size_t page_size,
                                                    std::span<const std::uint64_t> missing, OnMissing on_missing) {
  const auto system_page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  if (region.empty() || page_size == 0 || page_size % system_page != 0 ||
      reinterpret_cast<std::uintptr_t>(region.data()) % system_page != 0 || region.size() % page_size != 0) {
    return make_error(ErrorCode::kConfiguration, "postcopy: the region must start on a " + std::to_string(system_page) +
                                                     "-byte boundary and be whole pages of " + std::to_string(page_size) +
                                                     " bytes");
  }
  const std::uint64_t pages = region.size() / page_size;
  for (std::size_t i = 0; i < missing.size(); ++i) {
    if (missing[i] >= pages || (i > 0 && missing[i] <= missing[i - 1])) {
      return make_error(ErrorCode::kConfiguration, "postcopy: missing page " + std::to_string(missing[i]) +
                                                       " is out of order or outside the region of " +
                                                       std::to_string(pages) + " pages");
    }
  }
  const int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) return system_error("userfaultfd() (root, or vm.unprivileged_userfaultfd=1, is needed)");
  std::unique_ptr<LazyPages> lazy(new LazyPages(region, page_size, uffd, std::move(on_missing)));
  if (Status armed = lazy->arm(missing); !armed) return armed.error();
  return lazy;
}

// Registered before the pages are dropped, so no touch in between reads a zero page.
Status LazyPages::arm(std::span<const std::uint64_t> missing) {
  uffdio_api api{.api = UFFD_API, .features = 0, .ioctls = 0};
  if (ioctl(uffd_, UFFDIO_API, &api) != 0) return system_error("UFFDIO_API");
  uffdio_register registration{
      .range = {reinterpret_cast<std::uintptr_t>(region_.data()), region_.size()},
      .mode = UFFDIO_REGISTER_MODE_MISSING,
      .ioctls = 0};
  if (ioctl(uffd_, UFFDIO_REGISTER, &registration) != 0) {
    return system_error("registering the region for missing pages (private anonymous memory only)");
  }
  for (std::size_t i = 0; i < missing.size();) {  // a run of pages at a time
    std::size_t run = 1;
    while (i + run < missing.size() && missing[i + run] == missing[i] + run) ++run;
    if (madvise(region_.data() + missing[i] * page_size_, run * page_size_, MADV_DONTNEED) != 0) {
      return system_error("dropping the pages not yet current");
    }
    i += run;
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
  on_missing_((fault.address - base) / page_size_);
}

Result<LazyPages::Installed> LazyPages::install(std::uint64_t page, const std::byte* bytes) {
  if (Status inside = check_page(page); !inside) return inside.error();
  uffdio_copy copy{.dst = reinterpret_cast<std::uintptr_t>(region_.data()) + page * page_size_,
                   .src = reinterpret_cast<std::uintptr_t>(bytes),
                   .len = page_size_,
                   .mode = 0,
                   .copy = 0};
  return installed(ioctl(uffd_, UFFDIO_COPY, &copy), page, "UFFDIO_COPY");
}

Result<LazyPages::Installed> LazyPages::install_zero(std::uint64_t page) {
  if (Status inside = check_page(page); !inside) return inside.error();
  uffdio_zeropage zero{.range = {reinterpret_cast<std::uintptr_t>(region_.data()) + page * page_size_, page_size_},
                       .mode = 0,
                       .zeropage = 0};
  return installed(ioctl(uffd_, UFFDIO_ZEROPAGE, &zero), page, "UFFDIO_ZEROPAGE");
}

Status LazyPages::check_page(std::uint64_t page) const {
  if (page < region_.size() / page_size_) return Ok{};
  return make_error(ErrorCode::kConfiguration, "postcopy: page " + std::to_string(page) + " is outside the region of " +
                                                   std::to_string(region_.size() / page_size_) + " pages");
}

// An ioctl's result for `page`: a page already there (EEXIST) is no error, and keeps what
// it holds.
Result<LazyPages::Installed> LazyPages::installed(long result, std::uint64_t page, const char* how) const {
  if (result == 0) return Installed::kInstalled;
  if (errno == EEXIST) return Installed::kAlreadyPresent;
  return system_error("installing page " + std::to_string(page) + " (" + how + ")");
}

}  // namespace pagewire::migration
