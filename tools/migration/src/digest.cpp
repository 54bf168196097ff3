#include "pagewire/migration/digest.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace pagewire::migration {

namespace {

Digest to_digest(XXH128_hash_t hash) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);  // big-endian: the same bytes on every host
  Digest digest;
  std::memcpy(digest.data(), canonical.digest, digest.size());
  return digest;
}

}  // namespace

namespace {

std::uint64_t blocks_in(std::uint64_t bytes) { return (bytes + RegionDigest::kBlockBytes - 1) / RegionDigest::kBlockBytes; }

std::vector<std::span<const std::byte>> pieces_of(const pagecodec::PageMap& region) {
  std::vector<std::span<const std::byte>> pieces;
  for (const pagecodec::MemoryBlock& block : region.blocks()) pieces.emplace_back(block.bytes, block.pages * region.page_size());
  return pieces;
}

}  // namespace

RegionDigest::RegionDigest(std::span<const std::byte> region)
    : pieces_{region}, piece_first_block_{0}, block_digests_(blocks_in(region.size())),
      stale_(block_digests_.size(), 1), stale_count_(block_digests_.size()) {}

RegionDigest::RegionDigest(const pagecodec::PageMap& region) : pieces_(pieces_of(region)) {
  std::uint64_t blocks = 0;
  for (const auto& piece : pieces_) {
    piece_first_block_.push_back(blocks);
    blocks += blocks_in(piece.size());
  }
  block_digests_.resize(blocks);
  stale_.assign(blocks, 1);
  stale_count_ = blocks;
}

void RegionDigest::mark_page(std::uint64_t page, std::uint32_t page_size) {
  const std::uint64_t first = page * (page_size / kBlockBytes);
  const std::uint64_t end = std::min<std::uint64_t>(first + page_size / kBlockBytes, stale_.size());
  for (std::uint64_t block = first; block < end; ++block) {
    stale_count_ += stale_[block] == 0;
    stale_[block] = 1;
  }
}

void RegionDigest::mark_pages(std::span<const std::uint64_t> pages, std::uint32_t page_size) {
  for (std::uint64_t page : pages) mark_page(page, page_size);
}

void RegionDigest::rehash_block(std::uint64_t block) {
  std::size_t p = 0;
  if (pieces_.size() > 1) {
    const auto after = std::upper_bound(piece_first_block_.begin(), piece_first_block_.end(), block);
    p = static_cast<std::size_t>(after - piece_first_block_.begin()) - 1;
  }
  const std::uint64_t begin = (block - piece_first_block_[p]) * kBlockBytes;
  const std::uint64_t length = std::min<std::uint64_t>(kBlockBytes, pieces_[p].size() - begin);
  block_digests_[block] = to_digest(XXH3_128bits(pieces_[p].data() + begin, length));
}

std::uint64_t RegionDigest::refresh() {
  std::uint64_t rehashed = 0;
  for (std::uint64_t block = 0; block < stale_.size() && stale_count_ > 0; ++block) {
    if (!stale_[block]) continue;
    stale_[block] = 0;
    --stale_count_;
    rehash_block(block);
    ++rehashed;
  }
  return rehashed;
}

void RegionDigest::rehash_pages(std::uint64_t first_page, std::uint32_t count, std::uint32_t page_size) {
  const std::uint64_t blocks_per_page = page_size / kBlockBytes;
  const std::uint64_t end = std::min<std::uint64_t>((first_page + count) * blocks_per_page, block_digests_.size());
  for (std::uint64_t block = first_page * blocks_per_page; block < end; ++block) rehash_block(block);
}

void RegionDigest::rehash_pages_as(const std::byte* bytes, std::uint64_t first_page, std::uint32_t count,
                                   std::uint32_t page_size) {
  static const Digest zero_block = [] {
    const std::vector<std::byte> zeros(kBlockBytes);
    return to_digest(XXH3_128bits(zeros.data(), zeros.size()));
  }();
  const std::uint64_t blocks_per_page = page_size / kBlockBytes;
  const std::uint64_t first = first_page * blocks_per_page;
  const std::uint64_t end = std::min<std::uint64_t>((first_page + count) * blocks_per_page, block_digests_.size());
  for (std::uint64_t block = first; block < end; ++block) {
    block_digests_[block] =
        bytes == nullptr ? zero_block : to_digest(XXH3_128bits(bytes + (block - first) * kBlockBytes, kBlockBytes));
  }
}

Digest RegionDigest::digest() const {
  return to_digest(XXH3_128bits(block_digests_.data(), block_digests_.size() * sizeof(Digest)));
}

Digest digest_of(std::span<const std::byte> bytes) {
  RegionDigest digest(bytes);
  digest.refresh();
  return digest.digest();
}

std::string to_hex(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t byte : digest) {
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

}  // namespace pagewire::migration
