// The library's dirty bitmap: what trackers mark, one page at a time, in runs, or as a
// KVM-style bitmap that starts anywhere, comes out exactly, ascending, once; what lies
// outside the guest is refused and marks nothing.
#include "pagewire/migration/dirty_pages.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

namespace pagewire::migration {
namespace {

std::vector<std::uint64_t> drained(DirtyPages& pages) {
  std::vector<std::uint64_t> out;
  pages.drain(&out);
  return out;
}

TEST(DirtyPages, MarksComeOutAscendingAndOnce) {
  DirtyPages pages(1000);
  ASSERT_TRUE(pages.mark(999).ok());
  ASSERT_TRUE(pages.mark(3).ok());
  ASSERT_TRUE(pages.mark(3).ok());
  ASSERT_TRUE(pages.mark_range(62, 4).ok());
  EXPECT_EQ(drained(pages), (std::vector<std::uint64_t>{3, 62, 63, 64, 65, 999}));
  EXPECT_TRUE(drained(pages).empty()) << "draining clears";
}

// A KVM memory slot's bitmap folded in at every alignment: the pages set are exactly the
// bits set, shifted to where the slot starts.
TEST(DirtyPages, KvmBitmapsMergeAtAnyOffset) {
  std::mt19937_64 rng(5);
  for (std::uint64_t first : {0u, 1u, 63u, 64u, 100u, 129u}) {
    for (std::uint64_t count : {1u, 63u, 64u, 65u, 200u}) {
      std::vector<std::uint64_t> words((count + 63) / 64);
      for (auto& w : words) w = rng();
      words.back() |= ~std::uint64_t{0};  // bits past `count` must be ignored
      DirtyPages pages(first + count + 70);
      ASSERT_TRUE(pages.merge_bitmap(first, words, count).ok());
      std::vector<std::uint64_t> expected;
      for (std::uint64_t i = 0; i < count; ++i) {
        if ((words[i / 64] >> (i % 64)) & 1) expected.push_back(first + i);
      }
      EXPECT_EQ(drained(pages), expected) << "first " << first << ", count " << count;
    }
  }
}

TEST(DirtyPages, PagesOutsideTheGuestAreRefusedAndMarkNothing) {
  DirtyPages pages(100);
  EXPECT_FALSE(pages.mark(100).ok());
  EXPECT_FALSE(pages.mark_range(90, 11).ok());
  EXPECT_FALSE(pages.mark_range(UINT64_MAX, 2).ok()) << "no wrap-around";
  const std::vector<std::uint64_t> words{~std::uint64_t{0}, ~std::uint64_t{0}};
  EXPECT_FALSE(pages.merge_bitmap(50, words, 51).ok());
  EXPECT_FALSE(pages.merge_bitmap(0, words, 129).ok()) << "more pages than the bitmap holds";
  EXPECT_TRUE(drained(pages).empty());
}

}  // namespace
}  // namespace pagewire::migration
