// Guest memory as pagecodec addresses it: page indices 0 .. pages()-1 over one or more blocks
// of host memory laid end to end, in the order both ends agree on. A hypervisor's RAM is
// several blocks (low and high memory around the PCI hole, a video RAM, a ROM); the page
// index space is their concatenation, like QEMU's ram_addr_t, and each end may lay its
// blocks out differently in its own address space.
//
// Built once before a session (create() allocates); page() and run_from() then only read,
// from any number of cores at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::pagecodec {

struct MemoryBlock {
  std::byte* bytes = nullptr;
  std::uint64_t pages = 0;
};

class PageMap {
 public:
  PageMap() = default;  // no pages
  // Every block holds at least one page, no two overlap; at most 2^47 pages in all.
  static Result<PageMap> create(std::span<const MemoryBlock> blocks, std::uint32_t page_size);
  // One block: `bytes` holds `pages` pages. The caller vouches for it (no null, no overflow).
  static PageMap contiguous(std::byte* bytes, std::uint64_t pages, std::uint32_t page_size);

  // The page's first byte; `index` < pages().
  std::byte* page(std::uint64_t index) const {
    const std::size_t b = block_of(index);
    return blocks_[b].bytes + (index - first_pages_[b]) * page_size_;
  }
  // How many pages from `index` on lie back to back in memory (to the end of its block);
  // `index` < pages().
  std::uint64_t run_from(std::uint64_t index) const {
    const std::size_t b = block_of(index);
    return first_pages_[b] + blocks_[b].pages - index;
  }

  std::uint64_t pages() const { return pages_; }
  std::uint32_t page_size() const { return page_size_; }
  std::span<const MemoryBlock> blocks() const { return blocks_; }
  std::uint64_t first_page_of_block(std::size_t block) const { return first_pages_[block]; }

 private:
  PageMap(std::vector<MemoryBlock> blocks, std::uint32_t page_size);
  // The block holding page `index`: one block costs nothing; several, a binary search over
  // a handful of entries.
  std::size_t block_of(std::uint64_t index) const;

  std::vector<MemoryBlock> blocks_;
  std::vector<std::uint64_t> first_pages_;  // first_pages_[b]: page index of block b's first page
  std::uint64_t pages_ = 0;
  std::uint32_t page_size_ = 0;
};

}  // namespace pagewire::pagecodec
