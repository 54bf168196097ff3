// What a migration carries, as one page-numbered space: the guest's RAM blocks in order,
// then the pages that hold the device state (length-prefixed, sent with the final round).
// Checked once when a Source or Destination is made; read-only afterwards, by any thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pagewire/migration/ram_block.hpp"
#include "pagewire/pagecodec/page_map.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

class MigrationMemory {
 public:
  // Every RAM block and the state area whole pages of `page_size`, at least one page each.
  static Result<MigrationMemory> create(std::span<const RamBlock> ram, std::span<std::byte> state_area,
                                        std::uint32_t page_size);
  // One mapping: guest_pages pages, then the state pages.
  static Result<MigrationMemory> contiguous(std::span<std::byte> memory, std::uint64_t guest_pages,
                                            std::uint32_t page_size);

  // Guest pages, then state pages: what the session sends and the digest covers.
  const pagecodec::PageMap& pages() const { return pages_; }
  std::span<const RamBlock> ram() const { return ram_; }
  std::uint64_t guest_pages() const { return guest_pages_; }
  std::uint64_t state_pages() const { return pages_.pages() - guest_pages_; }
  std::span<std::byte> state_area() const { return state_area_; }
  std::uint32_t page_size() const { return pages_.page_size(); }
  std::uint64_t bytes() const { return pages_.pages() * pages_.page_size(); }

 private:
  MigrationMemory(std::vector<RamBlock> ram, std::span<std::byte> state_area, pagecodec::PageMap pages,
                  std::uint64_t guest_pages)
      : ram_(std::move(ram)), state_area_(state_area), pages_(std::move(pages)), guest_pages_(guest_pages) {}

  std::vector<RamBlock> ram_;
  std::span<std::byte> state_area_;
  pagecodec::PageMap pages_;
  std::uint64_t guest_pages_ = 0;
};

}  // namespace pagewire::migration
