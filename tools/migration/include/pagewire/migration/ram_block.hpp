// A block of guest RAM as the hypervisor maps it. A guest's memory is a list of them (QEMU:
// "pc.ram" split around the PCI hole, "vga.vram", ROMs) in an order both ends agree on; the
// migration numbers pages across the list as if the blocks lay end to end, so each end may
// place its blocks anywhere in its own address space.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagewire::migration {

struct RamBlock {
  std::byte* host = nullptr;  // where this process maps the block
  std::uint64_t bytes = 0;    // whole pages of the migration's page size
};

}  // namespace pagewire::migration
