// The link rate the adaptive policy uses: measured when the path holds the sender back,
// only ever raised by intervals in which the sender itself was the limit.
#include <gtest/gtest.h>

#include "pagewire/transport/link_rate_estimate.hpp"

namespace pagewire::transport {
namespace {

constexpr std::uint64_t kHz = 1'000'000'000;  // one tick per nanosecond
constexpr std::uint64_t kMs = kHz / 1000;

// Feeds `ms` milliseconds of polls, one every 10 us, at `bytes_per_second` acknowledged.
void run(LinkRateEstimate* estimate, std::uint64_t* now, std::uint64_t* acked, double bytes_per_second, int ms,
         bool held) {
  for (int i = 0; i < ms * 100; ++i) {
    *now += 10'000;
    *acked += static_cast<std::uint64_t>(bytes_per_second / 100'000);
    estimate->on_poll(*now, *acked, held, 0);
  }
}

TEST(LinkRateEstimate, NothingIsKnownBeforeTheFirstInterval) {
  LinkRateEstimate estimate(kHz);
  EXPECT_EQ(estimate.bytes_per_second(), 0);
  EXPECT_FALSE(estimate.on_poll(kMs, 0, true, 0));
  EXPECT_EQ(estimate.bytes_per_second(), 0);
}

TEST(LinkRateEstimate, APathThatHoldsTheSenderBackIsMeasured) {
  LinkRateEstimate estimate(kHz);
  std::uint64_t now = 1, acked = 0;
  run(&estimate, &now, &acked, 125e6, 50, true);  // a 1 Gbit/s bottleneck
  EXPECT_NEAR(estimate.bytes_per_second(), 125e6, 2e6);
  run(&estimate, &now, &acked, 60e6, 50, true);  // the path slows down: followed
  EXPECT_NEAR(estimate.bytes_per_second(), 60e6, 2e6);
}

TEST(LinkRateEstimate, ASenderShortOfFramesNeverLowersIt) {
  LinkRateEstimate estimate(kHz);
  std::uint64_t now = 1, acked = 0;
  run(&estimate, &now, &acked, 125e6, 50, true);
  // Deflating, the sender offers 40 MB/s of wire: that says nothing about the path.
  run(&estimate, &now, &acked, 40e6, 50, false);
  EXPECT_NEAR(estimate.bytes_per_second(), 125e6, 2e6);
  // A sender that went faster than the estimate without being held: the path took that much.
  run(&estimate, &now, &acked, 400e6, 5, false);
  EXPECT_NEAR(estimate.bytes_per_second(), 400e6, 8e6);
}

TEST(LinkRateEstimate, IntervalsLastAtLeastARoundTrip) {
  LinkRateEstimate estimate(kHz);
  std::uint64_t acked = 0;
  estimate.on_poll(1, acked, true, 0);
  // 150 ms RTT: ACKs come in bursts a round trip apart; 5 ms of polls are no interval yet.
  for (std::uint64_t t = 1; t < 5 * kMs; t += 10'000) EXPECT_FALSE(estimate.on_poll(t, acked, true, 150 * kMs));
  EXPECT_EQ(estimate.bytes_per_second(), 0);
}

}  // namespace
}  // namespace pagewire::transport
