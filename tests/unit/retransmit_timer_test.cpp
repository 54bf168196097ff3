// The source's retransmission timer as pure logic (RetransmitTimer), driven by samples and
// verdicts as a stream would: RFC 6298's estimate and back-off, the tail-loss probe (one per
// silence), and the run of timers that tells a black hole or a dead peer. In ticks; here a
// tick is a microsecond.
#include "pagewire/transport/retransmit_timer.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace pagewire::transport {
namespace {

constexpr RetransmitTimer::Limits kLimits{.initial = 20000, .floor = 5000, .ceiling = 1000000, .ack_delay = 200};

TEST(RetransmitTimer, BeforeAnySampleTheInitialRtoHoldsAndNoProbe) {
  RetransmitTimer timer(kLimits);
  EXPECT_EQ(timer.rto(), 20000u);
  const auto wait = timer.wait(true);
  EXPECT_EQ(wait.ticks, 20000u);
  EXPECT_FALSE(wait.probe) << "a probe needs an RTT to be timed from";
  RetransmitTimer tiny({.initial = 1, .floor = 5000, .ceiling = 1000000});
  EXPECT_EQ(tiny.rto(), 5000u) << "never below the floor";
}

TEST(RetransmitTimer, SamplesAreSmoothedAsRfc6298AndTheRtoStaysOutsideTheReorderingWindow) {
  RetransmitTimer timer(kLimits);
  timer.on_ack(8000, false);
  EXPECT_EQ(timer.srtt(), 8000u);
  EXPECT_EQ(timer.rttvar(), 4000u);
  EXPECT_EQ(timer.rto(), 8000u + 4 * 4000u);
  timer.on_ack(16000, false);
  EXPECT_EQ(timer.rttvar(), (3 * 4000u + 8000u) / 4);
  EXPECT_EQ(timer.srtt(), (7 * 8000u + 16000u) / 8);
  // A steady path: rttvar shrinks to nothing, and srtt / 2 keeps the timer past 1.25 srtt.
  RetransmitTimer steady({.initial = 20000, .floor = 1, .ceiling = 1000000});
  for (int i = 0; i < 200; ++i) steady.on_ack(100000, false);
  EXPECT_EQ(steady.rttvar(), 0u);
  EXPECT_EQ(steady.rto(), 150000u);
  // A short path: the floor.
  RetransmitTimer near(kLimits);
  near.on_ack(100, false);
  EXPECT_EQ(near.rto(), 5000u);
}

TEST(RetransmitTimer, TimeoutsBackOffToTheCeilingAndProgressUndoesIt) {
  RetransmitTimer timer(kLimits);
  timer.on_ack(8000, true);
  const std::uint64_t base = timer.rto();
  std::uint64_t expected = base;
  for (int fired = 1; fired <= 12; ++fired) {
    timer.on_fired(false);
    expected = std::min<std::uint64_t>(2 * expected, kLimits.ceiling);
    EXPECT_EQ(timer.rto(), expected) << "after " << fired << " timeouts";
    EXPECT_EQ(timer.fired_without_progress(), static_cast<std::uint32_t>(fired));
  }
  EXPECT_EQ(timer.rto(), kLimits.ceiling);
  timer.on_ack(0, false);  // an ACK that moves nothing and times nothing: still backed off
  EXPECT_EQ(timer.rto(), kLimits.ceiling);
  timer.on_ack(0, true);
  EXPECT_EQ(timer.rto(), base) << "the cumulative ACK moved: back to the estimate";
  EXPECT_EQ(timer.fired_without_progress(), 0u);
}

TEST(RetransmitTimer, OneTailProbePerSilenceThenTheRto) {
  RetransmitTimer timer(kLimits);
  timer.on_ack(10000, true);
  // Frames still to send: a later one would reveal a loss by SACK, so only the RTO.
  EXPECT_FALSE(timer.wait(false).probe);
  auto wait = timer.wait(true);
  EXPECT_TRUE(wait.probe);
  EXPECT_EQ(wait.ticks, 2 * 10000u + 200u) << "2 SRTT and the ACK delay";
  timer.on_fired(true);
  EXPECT_EQ(timer.rto(), 10000u + 4 * 5000u) << "a probe does not back off";
  // The probe went unanswered: a dark path now sees the RTO, backing off, never probe after
  // probe every 2 SRTT.
  for (int fired = 0; fired < 5; ++fired) {
    wait = timer.wait(true);
    EXPECT_FALSE(wait.probe);
    EXPECT_EQ(wait.ticks, timer.rto());
    timer.on_fired(false);
  }
  EXPECT_EQ(timer.fired_without_progress(), 6u) << "probes count towards a black hole too";
  timer.on_ack(10000, true);
  EXPECT_TRUE(timer.wait(true).probe) << "answered: the next silence may be probed again";
}

TEST(RetransmitTimer, AProbeIsOnlyWorthItWhenSoonerThanTheRto) {
  RetransmitTimer timer({.initial = 20000, .floor = 1000, .ceiling = 1000000, .ack_delay = 40000});
  timer.on_ack(10000, true);
  const auto wait = timer.wait(true);
  EXPECT_FALSE(wait.probe) << "2 SRTT + a long ACK delay outlast the RTO";
  EXPECT_EQ(wait.ticks, timer.rto());
}

TEST(RetransmitTimer, RestartDropsTheBackOffWithoutASample) {
  RetransmitTimer timer(kLimits);
  timer.on_ack(8000, true);
  const std::uint64_t base = timer.rto();
  timer.on_fired(false);
  timer.on_fired(false);
  timer.restart();  // the path MTU fell: what is outstanding goes again at the next timer
  EXPECT_EQ(timer.rto(), base);
  EXPECT_EQ(timer.fired_without_progress(), 2u) << "only an acknowledgement ends the run";
}

}  // namespace
}  // namespace pagewire::transport
