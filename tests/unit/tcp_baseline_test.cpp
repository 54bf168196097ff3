// The kernel-TCP baseline carries the same records as pagewire: every page arrives, byte for
// byte, whatever the codec policy and the number of connections.
#include "pagewire/bench/tcp_baseline.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "pagewire/sim/image.hpp"

namespace pagewire::bench {
namespace {

constexpr std::uint32_t kPage = 4096;

class TcpBaseline : public ::testing::TestWithParam<const char*> {};

TEST_P(TcpBaseline, DeliversEveryPageOverTwoConnections) {
  std::vector<std::byte> source(2048 * kPage), destination(source.size(), std::byte{0x55});
  ASSERT_TRUE(sim::fill_image(source, kPage, sim::ImageProfile::kDatabase, 3));
  auto policy = pagecodec::policy_named(GetParam());
  ASSERT_TRUE(policy);
  auto seconds = tcp_round(source, destination, {.streams = 2, .page_size = kPage, .policy = *policy});
  ASSERT_TRUE(seconds) << seconds.error().message;
  EXPECT_GT(*seconds, 0);
  EXPECT_EQ(std::memcmp(source.data(), destination.data(), source.size()), 0);
}

INSTANTIATE_TEST_SUITE_P(Policies, TcpBaseline, ::testing::Values("raw", "deflate", "full"));

TEST(TcpBaselineInput, RefusesRegionsOfDifferentSizes) {
  std::vector<std::byte> source(4 * kPage), destination(3 * kPage);
  EXPECT_FALSE(tcp_round(source, destination, {}));
}

}  // namespace
}  // namespace pagewire::bench
