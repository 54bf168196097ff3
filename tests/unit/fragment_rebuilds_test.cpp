// Frames arriving in parts as pure logic (FragmentRebuilds), without EAL: parts in any order
// and repeated make a frame whole exactly once; parts that do not belong are refused; a full
// table and frames delivered whole meanwhile. Reachable only through the net_ring rigs'
// black-hole runs before.
#include "pagewire/transport/fragment_rebuilds.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace pagewire::transport {
namespace {

using Rebuilds = FragmentRebuilds<int, 4>;
using Part = Rebuilds::Part;

constexpr std::uint32_t kUnit = kFragmentUnit;

TEST(FragmentRebuilds, PartsInAnyOrderAndRepeatedMakeTheFrameWholeOnce) {
  Rebuilds rebuilds;
  int frame = 7;
  const std::uint32_t total = 3 * kUnit + 100;  // the last part is short
  Rebuilds::Rebuild* rebuild = rebuilds.start(42, total, &frame);
  ASSERT_NE(rebuild, nullptr);
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 2 * kUnit, kUnit + 100), Part::kMissingParts);
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 0, kUnit), Part::kMissingParts);
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 0, kUnit), Part::kMissingParts) << "a repeat adds nothing";
  EXPECT_EQ(rebuilds.find(42), rebuild);
  EXPECT_EQ(Rebuilds::add(*rebuild, total, kUnit, kUnit), Part::kWhole);
  EXPECT_EQ(rebuilds.take(*rebuild), &frame);
  EXPECT_EQ(rebuilds.find(42), nullptr) << "taken: the slot is free again";
}

TEST(FragmentRebuilds, PartsThatDoNotBelongAreRefusedAndNoted) {
  Rebuilds rebuilds;
  int frame = 0;
  const std::uint32_t total = 4 * kUnit;
  Rebuilds::Rebuild* rebuild = rebuilds.start(1, total, &frame);
  ASSERT_NE(rebuild, nullptr);
  EXPECT_EQ(Rebuilds::add(*rebuild, total + kUnit, 0, kUnit), Part::kRefused) << "a part of another frame";
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 3 * kUnit, 2 * kUnit), Part::kRefused) << "past the end";
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 100, kUnit), Part::kRefused) << "not on a unit";
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 0, kUnit / 2), Part::kRefused) << "a short part that does not end it";
  EXPECT_EQ(Rebuilds::add(*rebuild, total, kUnit, 0), Part::kRefused) << "empty";
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 0xfffffc00u, 2 * kUnit), Part::kRefused) << "offset + length wraps";
  EXPECT_EQ(rebuild->units_have, 0u) << "nothing refused was noted";
  EXPECT_EQ(Rebuilds::add(*rebuild, total, 0, total), Part::kWhole);
}

TEST(FragmentRebuilds, AFullTableStartsNothingAndFramesDeliveredWholeAreForgotten) {
  Rebuilds rebuilds;
  int frames[5] = {0, 1, 2, 3, 4};
  for (std::uint32_t seq = 10; seq < 14; ++seq) ASSERT_NE(rebuilds.start(seq, 2 * kUnit, &frames[seq - 10]), nullptr);
  EXPECT_TRUE(rebuilds.full());
  EXPECT_EQ(rebuilds.start(14, 2 * kUnit, &frames[4]), nullptr);
  EXPECT_EQ(rebuilds.start(15, 0, &frames[4]), nullptr) << "nothing to rebuild";

  std::vector<int> released;
  rebuilds.forget_before(12, [&](int* frame) { released.push_back(*frame); });
  EXPECT_EQ(released, (std::vector<int>{0, 1})) << "10 and 11 arrived whole meanwhile";
  EXPECT_FALSE(rebuilds.full());
  EXPECT_EQ(rebuilds.start(12, 2 * kUnit, &frames[4]), nullptr) << "12 is being rebuilt already";
  EXPECT_NE(rebuilds.start(14, 2 * kUnit, &frames[4]), nullptr);
  EXPECT_EQ(rebuilds.start(15, Rebuilds::kMaxTotal + 1, &frames[4]), nullptr) << "longer than units can count";

  rebuilds.release_all([&](int* frame) { released.push_back(*frame); });
  EXPECT_EQ(released, (std::vector<int>{0, 1, 4, 2, 3}));
}

TEST(FragmentRebuilds, SequenceNumbersBeforeAWrapAreForgottenAfterIt) {
  Rebuilds rebuilds;
  int frame = 9;
  ASSERT_NE(rebuilds.start(0xffffffffu, kUnit, &frame), nullptr);
  std::vector<int> released;
  rebuilds.forget_before(0xffffffffu, [&](int* item) { released.push_back(*item); });
  EXPECT_TRUE(released.empty()) << "not before itself";
  rebuilds.forget_before(2, [&](int* item) { released.push_back(*item); });
  EXPECT_EQ(released, (std::vector<int>{9}));
}

}  // namespace
}  // namespace pagewire::transport
