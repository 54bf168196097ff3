#include "write_fault_handler.hpp"

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace pagewire::migration {

Result<std::unique_ptr<WriteFaultHandler>> WriteFaultHandler::start(int uffd, std::span<std::byte> region,
                                                                    std::size_t page_size) {
  std::unique_ptr<WriteFaultHandler> handler(new WriteFaultHandler(uffd, region, page_size));
  auto thread = FaultThread::start(
      uffd, [h = handler.get()](const PageFault& fault) { h->on_fault(fault); }, "write tracking");
  if (!thread) return thread.error();
  handler->thread_ = std::move(thread).value();
  return handler;
}

WriteFaultHandler::WriteFaultHandler(int uffd, std::span<std::byte> region, std::size_t page_size)
    : uffd_(uffd), region_(region), page_size_(page_size), written_((region.size() / page_size + 63) / 64) {}

Status WriteFaultHandler::protect(std::uint64_t first_page, std::uint64_t count, bool write_protect) const {
  uffdio_writeprotect change{
      .range = {reinterpret_cast<std::uintptr_t>(region_.data()) + first_page * page_size_, count * page_size_},
      .mode = write_protect ? static_cast<std::uint64_t>(UFFDIO_WRITEPROTECT_MODE_WP) : 0};
  if (ioctl(uffd_, UFFDIO_WRITEPROTECT, &change) != 0) {
    return make_error(ErrorCode::kSystem, std::string("write tracking: UFFDIO_WRITEPROTECT: ") + std::strerror(errno));
  }
  return Ok{};
}

void WriteFaultHandler::on_fault(const PageFault& fault) {
  if ((fault.flags & UFFD_PAGEFAULT_FLAG_WP) == 0) return;
  const std::uint64_t page = (fault.address - reinterpret_cast<std::uintptr_t>(region_.data())) / page_size_;
  std::lock_guard hold(order_);
  written_[page / 64] |= std::uint64_t{1} << (page % 64);
  if (!protect(page, 1, false)) failed_.store(true);  // lifting it also wakes the writer
}

Status WriteFaultHandler::collect(DirtyPages& pages, std::uint64_t first_page) {
  if (failed_.load()) return make_error(ErrorCode::kSystem, "write tracking: a write fault could not be resolved");
  std::lock_guard hold(order_);
  for (std::size_t w = 0; w < written_.size(); ++w) {
    const std::uint64_t bits = std::exchange(written_[w], 0);
    if (bits == 0) continue;
    const std::uint64_t region_pages = region_.size() / page_size_;
    if (Status marked = pages.merge_bitmap(first_page + w * 64, std::span(&bits, 1),
                                           std::min<std::uint64_t>(64, region_pages - w * 64));
        !marked) {
      return marked;
    }
    // Protect the word's pages again, a run of set bits at a time.
    for (std::uint64_t rest = bits; rest != 0;) {
      const unsigned first = static_cast<unsigned>(__builtin_ctzll(rest));
      const std::uint64_t from_first = rest >> first;
      const unsigned run = from_first == ~std::uint64_t{0} ? 64 - first : static_cast<unsigned>(__builtin_ctzll(~from_first));
      if (Status again = protect(w * 64 + first, run, true); !again) return again;
      rest &= run + first >= 64 ? 0 : ~std::uint64_t{0} << (first + run);
    }
  }
  return Ok{};
}

}  // namespace pagewire::migration
