#include "pagewire/pagecodec/page_map.hpp"

#include <algorithm>
#include <functional>
#include <string>

#include "pagewire/pagecodec/record.hpp"

namespace pagewire::pagecodec {

namespace {

// Page indices travel as le64 and are multiplied by the page size: keep the product in range.
constexpr std::uint64_t kMaxPages = std::uint64_t{1} << 47;

}  // namespace

PageMap::PageMap(std::vector<MemoryBlock> blocks, std::uint32_t page_size)
    : blocks_(std::move(blocks)), page_size_(page_size) {
  first_pages_.reserve(blocks_.size());
  for (const MemoryBlock& block : blocks_) {
    first_pages_.push_back(pages_);
    pages_ += block.pages;
  }
}

Result<PageMap> PageMap::create(std::span<const MemoryBlock> blocks, std::uint32_t page_size) {
  if (!is_valid_page_size(page_size)) {
    return make_error("page size " + std::to_string(page_size) + ": expected a power of two from 4096 to 65536");
  }
  if (blocks.empty()) return make_error("guest memory of no blocks: expected at least one");
  std::uint64_t total = 0;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const std::string which = "guest memory block " + std::to_string(b);
    if (blocks[b].bytes == nullptr) return make_error(which + " has no address");
    if (blocks[b].pages == 0) return make_error(which + " holds no page: expected at least one");
    if (blocks[b].pages > kMaxPages - total) return make_error(which + ": more than 2^47 pages in all");
    total += blocks[b].pages;
  }
  std::vector<MemoryBlock> by_address(blocks.begin(), blocks.end());
  std::sort(by_address.begin(), by_address.end(),
            [](const MemoryBlock& a, const MemoryBlock& b) { return std::less<>{}(a.bytes, b.bytes); });
  for (std::size_t b = 1; b < by_address.size(); ++b) {
    const auto end = reinterpret_cast<std::uintptr_t>(by_address[b - 1].bytes) + by_address[b - 1].pages * page_size;
    if (reinterpret_cast<std::uintptr_t>(by_address[b].bytes) < end) {
      return make_error("guest memory blocks overlap: a page would be two pages");
    }
  }
  return PageMap(std::vector<MemoryBlock>(blocks.begin(), blocks.end()), page_size);
}

PageMap PageMap::contiguous(std::byte* bytes, std::uint64_t pages, std::uint32_t page_size) {
  return PageMap({MemoryBlock{bytes, pages}}, page_size);
}

std::size_t PageMap::block_of(std::uint64_t index) const {
  if (first_pages_.size() == 1) return 0;
  const auto after = std::upper_bound(first_pages_.begin(), first_pages_.end(), index);
  return static_cast<std::size_t>(after - first_pages_.begin()) - 1;
}

}  // namespace pagewire::pagecodec
