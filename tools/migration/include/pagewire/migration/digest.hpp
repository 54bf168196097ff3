// The digest that proves a migrated region equal to its source, and a way to keep it up to
// date while the region changes, so that a switchover rehashes only the pages the last
// round wrote instead of the whole region (1 GiB takes 100-250 ms here, most of a 300 ms
// downtime).
//
// Definition: XXH3-128 (libxxhash) of each 4 KiB block (the last one may be shorter), then
// XXH3-128 of those block digests in canonical byte order. Blocks are as small as the
// smallest page because dirty pages scatter: with larger blocks a few thousand dirty pages
// touch nearly every block. The price is 16 bytes of digest per 4 KiB (0.4%) and a final
// pass over them (0.4–1.5 ms per GiB here, docs/benchmarks.md). digest_of() and RegionDigest agree by construction;
// `pagewire image digest` prints the same value.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pagewire/pagecodec/page_map.hpp"

namespace pagewire::migration {

using Digest = std::array<std::uint8_t, 16>;

Digest digest_of(std::span<const std::byte> bytes);
std::string to_hex(const Digest& digest);

// A region's digest kept per block. The region may lie in several pieces of memory (a
// guest's RAM blocks): its digest is that of the pieces laid end to end, the same however
// each end places them. Whoever changes the region marks what it changed
// (pages, from a dirty log or a receiver's generation table); refresh() rehashes the
// marked blocks. A write that races with refresh() is harmless as long as it is marked
// afterwards: its block is rehashed on the next refresh.
//
// Threading: one thread at a time (the owner may hand it over), except rehash_pages().
class RegionDigest {
 public:
  static constexpr std::uint64_t kBlockBytes = 4096;

  // Every block starts stale.
  explicit RegionDigest(std::span<const std::byte> region);
  explicit RegionDigest(const pagecodec::PageMap& region);

  // `page_size` is a multiple of kBlockBytes (every valid page size is).
  void mark_page(std::uint64_t page, std::uint32_t page_size);
  void mark_pages(std::span<const std::uint64_t> pages, std::uint32_t page_size);
  std::uint64_t stale_blocks() const { return stale_count_; }
  std::uint64_t blocks() const { return block_digests_.size(); }

  // Rehashes the stale blocks; returns how many.
  std::uint64_t refresh();
  // Rehashes the blocks of pages [first_page, first_page + count) now, marked or not, and
  // leaves their marks alone. The one call several threads may make at once, for disjoint
  // pages, while no other method runs: each writes only its own blocks' digests.
  void rehash_pages(std::uint64_t first_page, std::uint32_t count, std::uint32_t page_size);
  // The same, from `bytes` (the pages back to back; null: zero pages) instead of the
  // region: what arrived, where the region's own bytes change afterwards (postcopy).
  void rehash_pages_as(const std::byte* bytes, std::uint64_t first_page, std::uint32_t count, std::uint32_t page_size);
  // The region's digest as of the last refresh(): call it with no block stale.
  Digest digest() const;

 private:
  void rehash_block(std::uint64_t block);
  // The region's memory, piece by piece; piece_first_block_[p]: the block piece p starts
  // with (every piece but the last is whole blocks: pages are).
  std::vector<std::span<const std::byte>> pieces_;
  std::vector<std::uint64_t> piece_first_block_;
  std::vector<Digest> block_digests_;
  std::vector<std::uint8_t> stale_;  // bytes, not bits: marking stays a single store
  std::uint64_t stale_count_ = 0;
};

}  // namespace pagewire::migration
