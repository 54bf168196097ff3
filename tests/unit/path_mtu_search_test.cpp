// The path-MTU search against simulated paths: a path passes probes up to its MTU and loses
// some by chance. What the handshake and a stream need: the largest size that passes, to
// within the resolution and never above it; one lost probe never shrinking anything; a
// black hole told apart from a peer that went away.
#include "pagewire/transport/path_mtu_search.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace pagewire::transport {
namespace {

using Next = PathMtuSearch::Next;
using Start = PathMtuSearch::Start;

constexpr std::uint16_t kFloor = 1280;
constexpr std::uint32_t kTries = 3;

struct Probes {
  Next end{};
  std::vector<std::uint16_t> probed;  // every probe's size, in order
};

// Probes until the search ends; `lost(n)` says whether probe n (from 0) is lost whatever its
// size; a probe is answered when it is not lost and fits `path_mtu`.
Probes drive(PathMtuSearch& search, std::uint16_t path_mtu, const std::function<bool(std::size_t)>& lost = {}) {
  Probes run;
  Next next = Next::kProbe;
  while (next == Next::kProbe && run.probed.size() < 1000) {
    const std::uint16_t size = search.testing();
    const bool answered = size <= path_mtu && !(lost && lost(run.probed.size()));
    run.probed.push_back(size);
    next = answered ? search.on_answered() : search.on_unanswered();
  }
  run.end = next;
  return run;
}

TEST(PathMtuSearch, ATopThatPassesIsOneProbe) {
  PathMtuSearch search(kFloor, 9000, 0, Start::kTop, kTries);
  const Probes run = drive(search, 9000);
  EXPECT_EQ(run.end, Next::kDone);
  EXPECT_EQ(run.probed, std::vector<std::uint16_t>{9000});
  EXPECT_EQ(search.largest_passing(), 9000);
  EXPECT_FALSE(search.top_failed());
}

TEST(PathMtuSearch, FindsEveryPathMtuToWithinTheResolutionAndNeverAbove) {
  for (std::uint16_t mtu = kFloor; mtu <= 9000; mtu += 37) {
    PathMtuSearch search(kFloor, 9000, 0, Start::kTop, kTries);
    const Probes run = drive(search, mtu);
    ASSERT_EQ(run.end, Next::kDone) << mtu;
    EXPECT_LE(search.largest_passing(), mtu);
    EXPECT_GT(search.largest_passing() + PathMtuSearch::kResolution, mtu) << mtu;
    EXPECT_EQ(search.top_failed(), mtu < 9000);
    EXPECT_LE(run.probed.size(), 3 * (2 + 11)) << "tries per failing size, floor, top and a bisection of 7720 bytes";
  }
}

TEST(PathMtuSearch, OneLostProbeDoesNotShrinkThePath) {
  PathMtuSearch search(kFloor, 9000, 0, Start::kTop, kTries);
  const Probes run = drive(search, 9000, [](std::size_t n) { return n == 0; });
  EXPECT_EQ(run.end, Next::kDone);
  EXPECT_EQ(run.probed, (std::vector<std::uint16_t>{9000, 9000}));
  EXPECT_EQ(search.largest_passing(), 9000);
}

TEST(PathMtuSearch, APathThatPassesNothingFailsAfterTheFloorsTries) {
  PathMtuSearch search(kFloor, 9000, 0, Start::kTop, kTries);
  const Probes run = drive(search, 0);
  EXPECT_EQ(run.end, Next::kFailed);
  EXPECT_EQ(run.probed, (std::vector<std::uint16_t>{9000, 9000, 9000, kFloor, kFloor, kFloor}));
}

TEST(PathMtuSearch, ABlackHoleIsConfirmedBeforeTheSizeInUseFalls) {
  // Frames of 9000 vanish where 1500 still pass: the floor first, then the size in use,
  // then the search below it.
  PathMtuSearch search(kFloor, 9000, 0, Start::kFloor, kTries);
  const Probes run = drive(search, 1500);
  ASSERT_GE(run.probed.size(), 5u);
  EXPECT_EQ(run.probed[0], kFloor);
  EXPECT_EQ(run.probed[1], 9000);
  EXPECT_TRUE(search.top_failed());
  EXPECT_EQ(run.end, Next::kDone);
  EXPECT_LE(search.largest_passing(), 1500);
  EXPECT_GT(search.largest_passing() + PathMtuSearch::kResolution, 1500);
}

TEST(PathMtuSearch, AFalseAlarmKeepsTheSizeInUse) {
  // Timers fired for another reason (a descheduled peer): both probes pass.
  PathMtuSearch search(kFloor, 9000, 0, Start::kFloor, kTries);
  const Probes run = drive(search, 9000);
  EXPECT_EQ(run.end, Next::kDone);
  EXPECT_EQ(run.probed, (std::vector<std::uint16_t>{kFloor, 9000}));
  EXPECT_FALSE(search.top_failed());
  EXPECT_EQ(search.largest_passing(), 9000);
}

TEST(PathMtuSearch, APeerThatWentAwayIsNotABlackHole) {
  PathMtuSearch search(kFloor, 9000, 0, Start::kFloor, kTries);
  const Probes run = drive(search, 0);
  EXPECT_EQ(run.end, Next::kFailed);
  EXPECT_EQ(run.probed, (std::vector<std::uint16_t>{kFloor, kFloor, kFloor}));
  EXPECT_FALSE(search.top_failed()) << "the size in use was never probed";
}

TEST(PathMtuSearch, ARaiseNeverProbesBelowWhatIsKnownToPass) {
  PathMtuSearch search(kFloor, 9000, 1400, Start::kTop, kTries);
  const Probes run = drive(search, 4000);
  EXPECT_EQ(run.end, Next::kDone);
  EXPECT_EQ(run.probed.front(), 9000);
  for (std::uint16_t size : run.probed) EXPECT_GT(size, 1400);
  EXPECT_LE(search.largest_passing(), 4000);
  EXPECT_GT(search.largest_passing() + PathMtuSearch::kResolution, 4000);
}

TEST(PathMtuSearch, LossOfEveryOtherProbeStillSettlesOnThePathsSize) {
  PathMtuSearch search(kFloor, 9000, 0, Start::kTop, kTries);
  const Probes run = drive(search, 3000, [](std::size_t n) { return n % 2 == 1; });
  EXPECT_EQ(run.end, Next::kDone);
  EXPECT_LE(search.largest_passing(), 3000);
  EXPECT_GT(search.largest_passing() + PathMtuSearch::kResolution, 3000);
}

}  // namespace
}  // namespace pagewire::transport
