// The region digest: the incremental form always equals a digest of the whole region once
// the changed pages are marked, whatever the region's length and page size, and it really
// rehashes only the marked blocks.
#include "pagewire/migration/digest.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace pagewire::migration {
namespace {

constexpr std::uint32_t kPage = 4096;

std::vector<std::byte> random_bytes(std::size_t size, std::uint32_t seed) {
  std::mt19937_64 random(seed);
  std::vector<std::byte> bytes(size);
  for (auto& b : bytes) b = std::byte(random());
  return bytes;
}

TEST(RegionDigest, FullRefreshEqualsDigestOf) {
  const auto bytes = random_bytes(3 * kPage + 100, 1);  // a short last block
  RegionDigest digest(bytes);
  EXPECT_EQ(digest.blocks(), 4u);
  EXPECT_EQ(digest.refresh(), 4u);
  EXPECT_EQ(digest.digest(), digest_of(bytes));
}

// A region in RAM blocks has the digest of its pages laid end to end: both ends agree
// however each cuts and places its blocks.
TEST(RegionDigest, BlocksAnywhereDigestAsTheirPagesEndToEnd) {
  const auto bytes = random_bytes(12 * kPage, 2);
  std::vector<std::byte> apart(14 * kPage);  // blocks in reverse order, a page apart
  std::memcpy(apart.data() + 9 * kPage, bytes.data(), 5 * kPage);
  std::memcpy(apart.data() + 1 * kPage, bytes.data() + 5 * kPage, 7 * kPage);
  const pagecodec::MemoryBlock blocks[] = {{apart.data() + 9 * kPage, 5}, {apart.data() + kPage, 7}};
  const auto map = pagecodec::PageMap::create(blocks, kPage);
  ASSERT_TRUE(map.ok());
  RegionDigest digest(*map);
  EXPECT_EQ(digest.blocks(), 12u);
  digest.refresh();
  EXPECT_EQ(digest.digest(), digest_of(bytes));
  // A write in the second block, marked, rehashed: still the end-to-end digest.
  apart[3 * kPage + 17] ^= std::byte{1};
  auto changed = bytes;
  changed[7 * kPage + 17] ^= std::byte{1};
  digest.mark_page(7, kPage);
  EXPECT_EQ(digest.refresh(), 1u);
  EXPECT_EQ(digest.digest(), digest_of(changed));
  digest.rehash_pages(5, 2, kPage);
  EXPECT_EQ(digest.digest(), digest_of(changed));
}

TEST(RegionDigest, DiffersWhenOneByteDiffers) {
  auto bytes = random_bytes(64 * kPage, 2);
  const Digest before = digest_of(bytes);
  bytes[40 * kPage + 17] ^= std::byte{1};
  EXPECT_NE(digest_of(bytes), before);
}

TEST(RegionDigest, RehashesOnlyMarkedPagesAndMatchesAFreshDigest) {
  auto bytes = random_bytes(512 * kPage, 3);
  RegionDigest digest(bytes);
  digest.refresh();
  const std::vector<std::uint64_t> written = {3, 300, 301, 300};  // a page may be marked twice
  for (std::uint64_t page : written) bytes[page * kPage + 9] ^= std::byte{0x5a};
  // Unmarked, the kept digest still describes the old bytes.
  EXPECT_NE(digest.digest(), digest_of(bytes));
  digest.mark_pages(written, kPage);
  EXPECT_EQ(digest.stale_blocks(), 3u);
  EXPECT_EQ(digest.refresh(), 3u);
  EXPECT_EQ(digest.digest(), digest_of(bytes));
  EXPECT_EQ(digest.refresh(), 0u);
}

TEST(RegionDigest, LargePagesMarkEveryBlockTheyCover) {
  constexpr std::uint32_t kHugePage = 16 * kPage;
  auto bytes = random_bytes(8 * kHugePage, 4);
  RegionDigest digest(bytes);
  digest.refresh();
  bytes[5 * kHugePage + 15 * kPage] ^= std::byte{1};  // the last block of page 5
  digest.mark_page(5, kHugePage);
  EXPECT_EQ(digest.refresh(), 16u);
  EXPECT_EQ(digest.digest(), digest_of(bytes));
}

TEST(RegionDigest, PagesRehashedAsTheyAreWrittenByTwoThreadsMatchAFreshDigest) {
  // As a destination's stream cores do: each writes, then rehashes, the pages of its own
  // half, the large pages covering several blocks, the region ending in a short block.
  constexpr std::uint32_t kLargePage = 4 * kPage;
  auto bytes = random_bytes(64 * kLargePage + 100, 6);
  RegionDigest digest(bytes);
  digest.refresh();
  auto write_half = [&](std::uint64_t first, std::uint64_t end, std::uint32_t seed) {
    std::mt19937_64 random(seed);
    for (int write = 0; write < 200; ++write) {
      const std::uint64_t page = first + random() % (end - first);
      const std::uint64_t offset = std::min<std::uint64_t>(page * kLargePage + random() % kLargePage, bytes.size() - 1);
      bytes[offset] ^= std::byte{0x81};
      digest.rehash_pages(page, 1, kLargePage);
    }
  };
  std::thread low(write_half, 0, 32, 7);
  std::thread high(write_half, 32, 65, 8);  // page 64 is the region's short tail
  low.join();
  high.join();
  EXPECT_EQ(digest.stale_blocks(), 0u) << "rehash_pages leaves the marks alone";
  EXPECT_EQ(digest.digest(), digest_of(bytes));
}

// Postcopy hashes pages as they arrived, from a buffer, while the region itself is the
// guest's to change: the digest is that of the arrived bytes, zero pages included.
TEST(RegionDigest, PagesHashedAsTheyArrivedNotAsTheRegionHoldsThem) {
  const auto arrived = random_bytes(16 * kPage, 4);
  std::vector<std::byte> expected = arrived;
  std::fill(expected.begin() + 8 * kPage, expected.begin() + 12 * kPage, std::byte{0});
  std::vector<std::byte> region = random_bytes(16 * kPage, 5);  // what the guest made of it
  RegionDigest digest(region);
  digest.refresh();
  digest.rehash_pages_as(arrived.data(), 0, 8, 2 * kPage);  // 8 pages of 8 KiB: blocks 0-15
  digest.rehash_pages_as(arrived.data() + 8 * kPage, 4, 2, kPage * 2);
  digest.rehash_pages_as(nullptr, 8, 4, kPage);  // zero pages
  digest.rehash_pages_as(arrived.data() + 12 * kPage, 12, 4, kPage);
  EXPECT_EQ(digest.digest(), digest_of(expected));
  EXPECT_NE(digest.digest(), digest_of(region));
}

TEST(RegionDigest, IgnoresPagesPastTheRegion) {
  auto bytes = random_bytes(16 * kPage, 5);
  RegionDigest digest(bytes);
  digest.refresh();
  digest.mark_page(16, kPage);
  digest.mark_page(1u << 30, kPage);
  EXPECT_EQ(digest.stale_blocks(), 0u);
}

TEST(RegionDigest, HexIsThirtyTwoLowercaseDigits) {
  const auto bytes = random_bytes(kPage, 6);
  const std::string hex = to_hex(digest_of(bytes));
  EXPECT_EQ(hex.size(), 32u);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace pagewire::migration
