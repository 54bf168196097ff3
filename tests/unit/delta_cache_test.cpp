// The delta cache: bounded, exact, and keeping the pages that keep coming back.
#include "pagewire/pagecodec/delta_cache.hpp"

#include <gtest/gtest.h>

#include "pages.hpp"

namespace pagewire::pagecodec {
namespace {

using test::Bytes;

constexpr std::uint32_t kPage = 4096;

DeltaCache make_cache(std::uint64_t region_pages, std::uint64_t slots) {
  auto cache = DeltaCache::create(kPage, region_pages, slots * kPage);
  EXPECT_TRUE(cache.ok());
  return std::move(cache).value();
}

Bytes content(std::uint64_t seed) { return test::make_page(kPage, test::PageKind::kBinary, seed); }

TEST(DeltaCache, FirstSendIsOnlyRememberedSecondSendIsCached) {
  DeltaCache cache = make_cache(100, 4);
  std::uint32_t generation = 0;
  cache.record_sent(5, content(1).data(), 0);
  EXPECT_EQ(cache.lookup(5, &generation), nullptr);
  const Bytes second = content(2);
  cache.record_sent(5, second.data(), 1);
  std::byte* cached = cache.lookup(5, &generation);
  ASSERT_NE(cached, nullptr);
  EXPECT_EQ(generation, 1u);
  EXPECT_EQ(0, std::memcmp(cached, second.data(), kPage)) << "the copy equals what was sent";
  EXPECT_EQ(cache.counters().insertions, 1u);
  EXPECT_EQ(cache.counters().hits, 1u);
  EXPECT_EQ(cache.counters().misses, 1u);
}

TEST(DeltaCache, NeverHoldsMoreThanItsCapacity) {
  // Every page is sent in round r and again in round r + 3, so each insertion finds the
  // slots of three rounds back stale.
  DeltaCache cache = make_cache(1000, 8);
  EXPECT_EQ(cache.capacity_bytes(), 8u * kPage);
  for (std::uint64_t page = 0; page < 1000; ++page) {
    const Bytes c = content(page);
    const auto round = static_cast<std::uint32_t>(page);
    cache.record_sent(page, c.data(), round);
    cache.record_sent(page, c.data(), round + 3);
    ASSERT_LE(cache.used_slots(), 8u);
  }
  EXPECT_EQ(cache.counters().insertions, 1000u);
  EXPECT_EQ(cache.counters().evictions, 1000u - 8u);
  std::uint64_t present = 0;
  for (std::uint64_t page = 0; page < 1000; ++page) present += cache.contains(page) ? 1 : 0;
  EXPECT_EQ(present, 8u);
}

TEST(DeltaCache, PagesThatKeepGettingDirtiedSurviveOneOffWrites) {
  // 8 hot pages were inserted first; every round 6 one-off pages are inserted too. FIFO
  // would have evicted the hot pages by round 3; aging must keep them for good.
  DeltaCache cache = make_cache(10000, 16);
  const Bytes c = content(3);
  std::uint32_t generation = 0;
  // Hot set: pages 0..7, sent twice and looked up (re-dirtied) every round.
  for (std::uint64_t page = 0; page < 8; ++page) {
    cache.record_sent(page, c.data(), 0);
    cache.record_sent(page, c.data(), 1);
  }
  std::uint64_t cold = 100;
  for (std::uint32_t round = 2; round < 50; ++round) {
    for (std::uint64_t page = 0; page < 8; ++page) {
      ASSERT_NE(cache.lookup(page, &generation), nullptr) << "hot page " << page << " round " << round;
      cache.set_generation(page, round);
    }
    for (int k = 0; k < 6; ++k, ++cold) {
      cache.record_sent(cold, c.data(), 0);
      cache.record_sent(cold, c.data(), round);
    }
  }
  EXPECT_GT(cache.counters().evictions, 0u);
}

TEST(DeltaCache, ARoundOfMorePagesThanSlotsKeepsThoseItCachedInsteadOfCyclingThrough) {
  // The demo's pattern: a hot set sent every round, in page order, with one-off pages after
  // it, more than the cache holds. Evicting the oldest slot per insertion would evict each
  // hot page just before the next round reaches it, and never hit.
  constexpr std::uint64_t kSlots = 64;
  constexpr std::uint64_t kHot = 48;
  DeltaCache cache = make_cache(10000, kSlots);
  const Bytes c = content(8);
  std::uint64_t cold = 1000;
  for (std::uint64_t page = 0; page < 10000; ++page) cache.record_sent(page, nullptr, 0);  // the bulk round
  std::uint64_t hits_in_last_round = 0;
  for (std::uint32_t round = 1; round <= 6; ++round) {
    hits_in_last_round = 0;
    std::uint32_t generation = 0;
    for (std::uint64_t page = 0; page < kHot; ++page) {
      if (cache.lookup(page, &generation) != nullptr) {
        ++hits_in_last_round;
        cache.set_generation(page, round);
      } else {
        cache.record_sent(page, c.data(), round);
      }
    }
    for (std::uint64_t k = 0; k < kSlots; ++k) cache.record_sent(cold++, c.data(), round);  // sent a second time
    ASSERT_LE(cache.used_slots(), kSlots);
  }
  EXPECT_EQ(hits_in_last_round, kHot) << "every hot page is a hit once the set is cached";
  EXPECT_GT(cache.counters().refusals, 0u) << "one-off pages met a cache of fresh ones";
}

TEST(DeltaCache, SlotsUnusedForTwoRoundsGoToNewPages) {
  DeltaCache cache = make_cache(100, 2);
  const Bytes c = content(9);
  for (std::uint64_t page : {1, 2, 3}) cache.record_sent(page, nullptr, 0);
  cache.record_sent(1, c.data(), 1);
  cache.record_sent(2, c.data(), 1);
  cache.record_sent(3, c.data(), 2);
  EXPECT_FALSE(cache.contains(3)) << "pages 1 and 2 were sent in the round before: fresh";
  EXPECT_EQ(cache.counters().refusals, 1u);
  cache.record_sent(3, c.data(), 3);
  EXPECT_TRUE(cache.contains(3)) << "by round 3 they are stale";
  EXPECT_EQ(cache.counters().evictions, 1u);
  EXPECT_EQ(cache.used_slots(), 2u);
}

TEST(DeltaCache, InvalidateFreesTheSlot) {
  DeltaCache cache = make_cache(10, 2);
  const Bytes c = content(4);
  for (std::uint64_t page : {1, 2}) {
    cache.record_sent(page, c.data(), 0);
    cache.record_sent(page, c.data(), 1);
  }
  cache.invalidate(1);
  EXPECT_FALSE(cache.contains(1));
  EXPECT_EQ(cache.used_slots(), 1u);
  cache.record_sent(3, c.data(), 0);
  cache.record_sent(3, c.data(), 1);
  EXPECT_TRUE(cache.contains(2));
  EXPECT_TRUE(cache.contains(3));
  EXPECT_EQ(cache.counters().evictions, 0u) << "a freed slot is reused before evicting";
}

TEST(DeltaCache, AZeroPageIsContentToo) {
  DeltaCache cache = make_cache(10, 2);
  const Bytes c = content(7);
  cache.record_sent(4, nullptr, 0);  // sent as ZERO in the bulk round
  cache.record_sent(4, c.data(), 1);
  std::uint32_t generation = 0;
  ASSERT_NE(cache.lookup(4, &generation), nullptr);
  cache.record_sent(4, nullptr, 2);  // zero again
  const std::byte* cached = cache.lookup(4, &generation);
  EXPECT_EQ(generation, 2u);
  EXPECT_EQ(Bytes(cached, cached + kPage), Bytes(kPage)) << "the copy is zeros, as sent";
}

TEST(DeltaCache, ZeroCapacityDisablesIt) {
  DeltaCache cache = make_cache(10, 0);
  const Bytes c = content(5);
  cache.record_sent(1, c.data(), 0);
  cache.record_sent(1, c.data(), 1);
  std::uint32_t generation = 0;
  EXPECT_EQ(cache.lookup(1, &generation), nullptr);
}

TEST(DeltaCache, PagesOutsideTheRegionAreIgnored) {
  DeltaCache cache = make_cache(10, 2);
  const Bytes c = content(6);
  cache.record_sent(10, c.data(), 0);
  cache.record_sent(10, c.data(), 1);
  std::uint32_t generation = 0;
  EXPECT_EQ(cache.lookup(10, &generation), nullptr);
  EXPECT_EQ(cache.used_slots(), 0u);
}

}  // namespace
}  // namespace pagewire::pagecodec
