// The cost model measures real codec work (it checks its own decoded bytes) and turns it
// into cores: more memory per second needs more cores, and a codec that shrinks pages
// needs less wire for it.
#include "pagewire/bench/cost_model.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace pagewire::bench {
namespace {

TEST(CostModel, MeasuresEveryProfilePolicyAndRound) {
  CostModelOptions options;
  options.sample_bytes = 4 << 20;
  options.repeats = 1;
  options.profiles = {sim::ImageProfile::kDatabase};
  options.policies = {"raw", "full"};
  std::ostringstream progress;
  auto costs = measure_stage_costs(options, progress);
  ASSERT_TRUE(costs) << costs.error().message;
  ASSERT_EQ(costs->size(), 4u);  // 2 policies x first and dirty rounds
  for (const auto& cost : *costs) {
    EXPECT_GT(cost.encode_ns_per_page, 0) << cost.policy << " " << cost.round;
    EXPECT_GT(cost.decode_ns_per_page, 0) << cost.policy << " " << cost.round;
  }
  const StageCost& raw_dirty = (*costs)[1];
  const StageCost& full_dirty = (*costs)[3];
  EXPECT_EQ(raw_dirty.round, "dirty");
  // A raw page is the page plus its share of a header; a 64-byte write makes a small delta.
  EXPECT_GE(raw_dirty.wire_bytes_per_page, 4096);
  EXPECT_LT(full_dirty.wire_bytes_per_page, 512);
}

TEST(CostModel, CoresGrowWithTheRateAndShrinkingPagesNeedLessWire) {
  const StageCost raw{.profile = "p", .policy = "raw", .round = "first", .encode_ns_per_page = 400,
                      .decode_ns_per_page = 300, .wire_bytes_per_page = 4096};
  const StageCost small{.profile = "p", .policy = "full", .round = "first", .encode_ns_per_page = 400,
                        .decode_ns_per_page = 300, .wire_bytes_per_page = 1024};
  const auto at_25 = cores_for(raw, 0.1, 25, 4096);
  const auto at_100 = cores_for(raw, 0.1, 100, 4096);
  EXPECT_NEAR(at_100.source, 4 * at_25.source, 1e-9);
  EXPECT_NEAR(at_25.wire_gbps, 25, 1e-9);
  EXPECT_NEAR(cores_for(small, 0.1, 25, 4096).wire_gbps, 6.25, 1e-9);
  // 25 Gbit/s of raw pages = 762,939 pages/s at 400 + 409.6 ns each.
  EXPECT_NEAR(at_25.source, 25e9 / 8 / 4096 * (400 + 409.6) / 1e9, 1e-9);
}

}  // namespace
}  // namespace pagewire::bench
