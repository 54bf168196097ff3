#include "postcopy_pages.hpp"

#include <algorithm>

namespace pagewire::migration {

Result<std::unique_ptr<PostcopyPages>> PostcopyPages::start(const MigrationMemory& memory,
                                                            std::span<const PageRun> missing, OnMissing on_missing) {
  auto placement = std::make_unique<PostcopyPages>();
  placement->page_size_ = memory.page_size();
  std::uint64_t first_page = 0;
  for (const RamBlock& ram : memory.ram()) {
    const std::uint64_t pages = ram.bytes / memory.page_size();
    std::vector<PageRun> local;  // this block's missing runs, numbered within it
    for (const PageRun& run : missing) {
      const std::uint64_t from = std::max(run.first, first_page);
      const std::uint64_t to = std::min(run.first + run.count, first_page + pages);
      if (from < to) local.push_back({from - first_page, to - from});
      placement->missing_ += from < to ? to - from : 0;
    }
    Block block{first_page, pages, nullptr};
    if (!local.empty()) {
      auto lazy = LazyPages::start({ram.host, ram.bytes}, memory.page_size(), local,
                                   [on_missing, first_page](std::uint64_t page) { on_missing(first_page + page); });
      if (!lazy) return lazy.error();
      block.lazy = std::move(lazy).value();
    }
    placement->blocks_.push_back(std::move(block));
    first_page += pages;
  }
  return placement;
}

void PostcopyPages::place(std::uint64_t first, std::uint64_t count, const std::byte* bytes) noexcept {
  for (const Block& block : blocks_) {
    const std::uint64_t from = std::max(first, block.first_page);
    const std::uint64_t to = std::min(first + count, block.first_page + block.pages);
    if (from >= to || block.lazy == nullptr) continue;
    const std::byte* these = bytes == nullptr ? nullptr : bytes + (from - first) * page_size_;
    auto installed = block.lazy->install_run(from - block.first_page, to - from, these);
    if (installed) {
      placed_.fetch_add(*installed, std::memory_order_relaxed);
    } else if (!failed_.exchange(true, std::memory_order_acq_rel)) {
      failure_ = installed.error().message;
    }
  }
}

std::uint64_t PostcopyPages::faults() const {
  std::uint64_t total = 0;
  for (const Block& block : blocks_) total += block.lazy != nullptr ? block.lazy->faults() : 0;
  return total;
}

WaitSummary PostcopyPages::latencies() const {
  std::vector<const WaitHistogram*> histograms;
  for (const Block& block : blocks_) {
    if (block.lazy != nullptr) histograms.push_back(&block.lazy->waits());
  }
  return WaitHistogram::summarize(histograms);
}

std::string PostcopyPages::failure() const { return failed_.load(std::memory_order_acquire) ? failure_ : std::string(); }

}  // namespace pagewire::migration
