// Guest memory in blocks: PageMap numbers pages across them in the order given, whatever
// their addresses, and refuses a layout that would make a page two pages or none.
#include "pagewire/pagecodec/page_map.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace pagewire::pagecodec {
namespace {

constexpr std::uint32_t kPage = 4096;

TEST(PageMap, NumbersPagesAcrossBlocksInTheOrderGiven) {
  std::vector<std::byte> low(3 * kPage), high(5 * kPage);
  // The second block given lies below the first in memory, or above: order is the list's.
  const MemoryBlock blocks[] = {{high.data(), 5}, {low.data(), 3}};
  auto map = PageMap::create(blocks, kPage);
  ASSERT_TRUE(map.ok()) << map.error().message;
  EXPECT_EQ(map->pages(), 8u);
  EXPECT_EQ(map->page(0), high.data());
  EXPECT_EQ(map->page(4), high.data() + 4 * kPage);
  EXPECT_EQ(map->page(5), low.data());
  EXPECT_EQ(map->page(7), low.data() + 2 * kPage);
  EXPECT_EQ(map->run_from(0), 5u);
  EXPECT_EQ(map->run_from(4), 1u) << "the block ends after page 4";
  EXPECT_EQ(map->run_from(5), 3u);
  EXPECT_EQ(map->first_page_of_block(1), 5u);
}

TEST(PageMap, OneBlockIsOneRun) {
  std::vector<std::byte> memory(4 * kPage);
  const PageMap map = PageMap::contiguous(memory.data(), 4, kPage);
  EXPECT_EQ(map.page(3), memory.data() + 3 * kPage);
  EXPECT_EQ(map.run_from(1), 3u);
}

TEST(PageMap, RefusesLayoutsThatAreNotPages) {
  std::vector<std::byte> memory(8 * kPage);
  auto expect_refused = [](std::span<const MemoryBlock> blocks, std::uint32_t page_size, const std::string& why) {
    auto map = PageMap::create(blocks, page_size);
    ASSERT_FALSE(map.ok()) << why;
    EXPECT_NE(map.error().message.find(why), std::string::npos) << map.error().message;
  };
  expect_refused({}, kPage, "no blocks");
  const MemoryBlock empty[] = {{memory.data(), 2}, {memory.data() + 2 * kPage, 0}};
  expect_refused(empty, kPage, "block 1 holds no page");
  const MemoryBlock null[] = {{nullptr, 2}};
  expect_refused(null, kPage, "block 0 has no address");
  const MemoryBlock overlapping[] = {{memory.data() + 4 * kPage, 2}, {memory.data(), 5}};
  expect_refused(overlapping, kPage, "overlap");
  const MemoryBlock fine[] = {{memory.data(), 2}};
  expect_refused(fine, 3000, "page size 3000");
  const MemoryBlock adjacent[] = {{memory.data() + 4 * kPage, 4}, {memory.data(), 4}};
  EXPECT_TRUE(PageMap::create(adjacent, kPage).ok()) << "blocks may touch";
}

}  // namespace
}  // namespace pagewire::pagecodec
