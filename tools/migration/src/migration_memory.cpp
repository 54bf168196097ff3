#include "pagewire/migration/migration_memory.hpp"

#include <string>

#include "pagewire/pagecodec/record.hpp"

namespace pagewire::migration {

namespace {

Status check_whole_pages(const std::string& what, std::uint64_t bytes, std::uint32_t page_size) {
  if (bytes == 0 || bytes % page_size != 0) {
    return make_error(ErrorCode::kConfiguration, what + " of " + std::to_string(bytes) +
                                                     " bytes: expected whole pages of " + std::to_string(page_size) +
                                                     " bytes, at least one");
  }
  return Ok{};
}

}  // namespace

Result<MigrationMemory> MigrationMemory::create(std::span<const RamBlock> ram, std::span<std::byte> state_area,
                                                std::uint32_t page_size) {
  if (!pagecodec::is_valid_page_size(page_size)) {
    return make_error(ErrorCode::kConfiguration,
                      "page size " + std::to_string(page_size) + ": expected a power of two from 4096 to 65536");
  }
  if (ram.empty()) return make_error(ErrorCode::kConfiguration, "guest RAM of no blocks: expected at least one");
  std::vector<pagecodec::MemoryBlock> blocks;
  std::uint64_t guest_pages = 0;
  for (std::size_t b = 0; b < ram.size(); ++b) {
    if (Status whole = check_whole_pages("RAM block " + std::to_string(b), ram[b].bytes, page_size); !whole) {
      return whole.error();
    }
    blocks.push_back({ram[b].host, ram[b].bytes / page_size});
    guest_pages += ram[b].bytes / page_size;
  }
  if (Status whole = check_whole_pages("the device state area (state_pages_for)", state_area.size(), page_size);
      !whole) {
    return whole.error();
  }
  blocks.push_back({state_area.data(), state_area.size() / page_size});
  auto pages = pagecodec::PageMap::create(blocks, page_size);
  if (!pages) return make_error(ErrorCode::kConfiguration, pages.error().message);
  return MigrationMemory(std::vector<RamBlock>(ram.begin(), ram.end()), state_area, std::move(pages).value(),
                         guest_pages);
}

Result<MigrationMemory> MigrationMemory::contiguous(std::span<std::byte> memory, std::uint64_t guest_pages,
                                                    std::uint32_t page_size) {
  if (!pagecodec::is_valid_page_size(page_size)) return create({}, memory, page_size);  // says why
  if (guest_pages == 0 || memory.size() / page_size <= guest_pages) {
    return make_error(ErrorCode::kConfiguration,
                      "memory of " + std::to_string(memory.size()) + " bytes: expected " + std::to_string(guest_pages) +
                          " guest pages of " + std::to_string(page_size) +
                          " bytes and at least one page for the device state (state_pages_for)");
  }
  const std::uint64_t guest_bytes = guest_pages * page_size;
  const RamBlock ram{memory.data(), guest_bytes};
  return create(std::span(&ram, 1), memory.subspan(guest_bytes), page_size);
}

}  // namespace pagewire::migration
