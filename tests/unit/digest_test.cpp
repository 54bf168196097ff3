// The region digest: the incremental form always equals a digest of the whole region once
// the changed pages are marked, whatever the region's length and page size, and it really
// rehashes only the marked blocks.
#include "pagewire/tools/digest.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace pagewire::tools {
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
}  // namespace pagewire::tools
