// Reference memory images: seeded, reproducible page contents that resemble real guest RAM.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "pagewire/result.hpp"

namespace pagewire::sim {

enum class ImageProfile {
  // A booted, mostly idle Linux guest, after what was measured on a real one here: ~30% zero
  // pages, ~11% pages duplicating another page, the rest unique code/data and text pages.
  kIdleVm,
  // A database server: 8 KiB-aligned blocks of fixed-size rows (integers, short strings,
  // timestamps), ~20% free (zero) pages, some log text.
  kDatabase,
  // Incompressible: the worst case for every codec.
  kRandom,
};

Result<ImageProfile> parse_profile(std::string_view name);
std::string_view to_string(ImageProfile profile);

// Fills `memory` (a whole number of pages) with `profile`, reproducibly from `seed`.
Status fill_image(std::span<std::byte> memory, std::uint32_t page_size, ImageProfile profile, std::uint64_t seed);

// Writes a reference image file of `bytes` (a whole number of pages): zero pages are left
// as holes, so an idle-vm image takes ~70% of its size on disk.
Status create_image_file(const std::string& path, std::uint64_t bytes, std::uint32_t page_size, ImageProfile profile,
                         std::uint64_t seed);

// Writes `memory` to `path` as an image file, zero pages as holes, atomically: the file
// appears under its name whole (written as PATH.partial, synced, renamed) or not at all.
Status write_image_file(const std::string& path, std::span<const std::byte> memory, std::uint32_t page_size);

struct ImageStats {
  std::uint64_t pages = 0;
  std::uint64_t zero_pages = 0;
  std::uint64_t duplicate_pages = 0;  // same content as an earlier non-zero page
  std::uint64_t deflate_bytes = 0;    // ISA-L level 1, page by page, non-zero unique pages
  std::uint64_t deflate_pages = 0;    // pages that deflate made smaller
};

// Zero, duplicate and compressible fractions of a memory image (any raw file works: a
// QEMU pmemsave dump, a core file's memory).
ImageStats image_stats(std::span<const std::byte> memory, std::uint32_t page_size);

}  // namespace pagewire::sim
