// The send side of a stream's window as pure logic (SendWindow), without EAL: what ACKs
// release and report, which holes RACK deems lost and when, Karn's rule, what the timer
// resends, a repair cut short by pacing, and sequence numbers that wrap at 2^32. These cases
// were reachable only through the net_ring rigs before.
#include "pagewire/transport/send_window.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <vector>

namespace pagewire::transport {
namespace {

using Window = SendWindow<int>;

constexpr std::uint16_t kFrameBytes = 100;
constexpr std::uint64_t kLongAgo = 1000;  // "now" far past every send time below

// Frames whose items are their offsets from the window's first sequence number; the window
// releases them into `released`, and resends into `resent`.
struct Rig {
  explicit Rig(std::uint32_t first = 0, std::uint32_t slots = 64) : window(slots, first), first(first) {
    for (int i = 0; i < static_cast<int>(items.size()); ++i) items[i] = i;
  }
  // Builds `count` frames and transmits them, the i-th at time start + i.
  void send(int count, std::uint64_t start) {
    for (int i = 0; i < count; ++i) {
      window.push(&items[window.next() - first], kFrameBytes);
      window.transmitted(start + static_cast<std::uint64_t>(i));
    }
  }
  // One ACK: cumulative up to first + `ack`, then the offsets in `sacked`. Returns its report;
  // `frontier` says whether it moved the SACK frontier.
  Window::AckReport ack(int ack, const std::vector<int>& sacked = {}, bool* frontier = nullptr) {
    Window::AckReport report;
    const auto release = [this](int* item) { released.push_back(*item); };
    EXPECT_TRUE(window.acknowledge(first + static_cast<std::uint32_t>(ack), release, &report));
    for (int offset : sacked) window.selective(first + static_cast<std::uint32_t>(offset), release, &report);
    const bool moved = window.end_ack();
    if (frontier != nullptr) *frontier = moved;
    return report;
  }
  void repair(std::uint64_t now, std::uint64_t reordering_window, int allow = 1000) {
    window.repair_holes(now, reordering_window, [&](Window::Entry& entry) {
      if (allow-- <= 0) return false;
      resent.push_back(*entry.item);
      return true;
    });
  }

  Window window;
  std::uint32_t first;
  std::array<int, 64> items{};
  std::vector<int> released;
  std::vector<int> resent;
};

TEST(SendWindow, AnAckReleasesWhatItCoversOnceAndTimesThePathByTheYoungest) {
  Rig rig;
  rig.send(4, 10);
  EXPECT_EQ(rig.window.in_flight(), 4u);
  const Window::AckReport report = rig.ack(2);
  EXPECT_EQ(rig.released, (std::vector<int>{0, 1}));
  EXPECT_TRUE(report.advanced);
  EXPECT_EQ(report.bytes, 2u * kFrameBytes);
  EXPECT_EQ(report.rtt_sent_tsc, 11u) << "frame 1, the youngest, timed the path";
  EXPECT_EQ(report.youngest_sent_tsc, 11u);
  EXPECT_EQ(rig.window.una(), 2u);
  EXPECT_EQ(rig.window.in_flight(), 2u);

  const Window::AckReport again = rig.ack(2);
  EXPECT_FALSE(again.advanced);
  EXPECT_EQ(again.bytes, 0u);
  EXPECT_EQ(rig.released.size(), 2u) << "nothing released twice";
}

TEST(SendWindow, AnAckForWhatWasNeverSentOrIsOlderThanOneSeenIsRefused) {
  Rig rig;
  rig.send(4, 10);
  Window::AckReport report;
  const auto release = [&](int* item) { rig.released.push_back(*item); };
  EXPECT_FALSE(rig.window.acknowledge(5, release, &report)) << "beyond the last frame built";
  rig.ack(3);
  EXPECT_FALSE(rig.window.acknowledge(2, release, &report)) << "older than the cumulative ACK";
  EXPECT_EQ(rig.released, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(rig.window.una(), 3u);
}

TEST(SendWindow, SelectiveReportsReleaseEachFrameOnceAndIgnoreWhatIsOutsideOrUnsent) {
  Rig rig;
  rig.send(4, 10);
  rig.window.push(&rig.items[4], kFrameBytes);  // built, waiting for tokens
  const Window::AckReport report = rig.ack(0, {2, 2, 4, 40});
  EXPECT_EQ(rig.released, (std::vector<int>{2})) << "4 was never transmitted; 40 never built";
  EXPECT_EQ(report.bytes, kFrameBytes);
  EXPECT_EQ(rig.window.sacked(), 1u);
  EXPECT_EQ(rig.window.in_flight(), 4u);
  EXPECT_EQ(rig.window.sent_in_flight(), 3u);
  EXPECT_FALSE(rig.window.all_transmitted());

  rig.ack(3);  // covers the SACKed 2: released once, and the SACK count falls with it
  EXPECT_EQ(rig.released, (std::vector<int>{2, 0, 1}));
  EXPECT_EQ(rig.window.sacked(), 0u);
}

TEST(SendWindow, AHoleIsResentOnceThreeLaterFramesArrivedAndItOutlivedTheReorderingWindow) {
  Rig rig;
  rig.send(8, 100);
  bool frontier = false;
  rig.ack(0, {1, 2}, &frontier);
  EXPECT_TRUE(frontier);
  rig.repair(kLongAgo, 10);
  EXPECT_TRUE(rig.resent.empty()) << "two later arrivals may be reordering";

  rig.ack(0, {3}, &frontier);
  EXPECT_TRUE(frontier);
  rig.repair(105, 10);
  EXPECT_TRUE(rig.resent.empty()) << "out for 5 ticks, less than the reordering window";
  EXPECT_TRUE(rig.window.holes_waiting());

  rig.repair(kLongAgo, 10);
  EXPECT_EQ(rig.resent, (std::vector<int>{0}));
  EXPECT_FALSE(rig.window.holes_waiting());
  rig.repair(kLongAgo, 10);
  EXPECT_EQ(rig.resent.size(), 1u) << "looked at once per frontier";
}

TEST(SendWindow, ALostRetransmissionIsFoundByFramesSentAfterIt) {
  Rig rig;
  rig.send(8, 100);
  rig.ack(0, {1, 2, 3});
  rig.repair(kLongAgo, 10);
  ASSERT_EQ(rig.resent, (std::vector<int>{0}));

  bool frontier = false;
  rig.ack(0, {4, 5, 6, 7}, &frontier);
  EXPECT_TRUE(frontier);
  rig.repair(2 * kLongAgo, 10);
  EXPECT_EQ(rig.resent.size(), 1u) << "every arrival was sent before the retransmission";

  rig.send(3, 2 * kLongAgo);  // frames 8, 9, 10 go after it
  rig.ack(0, {8, 9}, &frontier);
  rig.repair(3 * kLongAgo, 10);
  EXPECT_EQ(rig.resent.size(), 1u) << "two later arrivals";
  rig.ack(0, {10}, &frontier);
  rig.repair(3 * kLongAgo, 10);
  EXPECT_EQ(rig.resent, (std::vector<int>{0, 0}));
}

TEST(SendWindow, RetransmittedFramesAndOldBlocksGiveNoRttSample) {
  Rig rig;
  rig.send(6, 100);
  rig.ack(0, {1, 2, 5});  // frame 5 arrived: everything reported is below 6 now
  rig.repair(kLongAgo, 10);
  ASSERT_EQ(rig.resent, (std::vector<int>{0}));
  // Karn: frame 0 went twice, and which copy arrived is unknown. Frames 3 and 4 arrived
  // long ago and are only reported now, around the repaired hole.
  const Window::AckReport report = rig.ack(3, {4});
  EXPECT_EQ(report.rtt_sent_tsc, 0u);
  EXPECT_EQ(report.bytes, 2u * kFrameBytes) << "frames 0 and 4 newly delivered";
  EXPECT_EQ(report.youngest_sent_tsc, kLongAgo) << "the retransmission is the youngest send";
}

TEST(SendWindow, TheTimerResendsTheOldestDueFramesAndStopsAtTheFirstNotDue) {
  Rig rig;
  for (int i = 0; i < 4; ++i) {
    rig.window.push(&rig.items[i], kFrameBytes);
    rig.window.transmitted(100 * static_cast<std::uint64_t>(i + 1));
  }
  rig.ack(0, {1});
  std::vector<int> resent;
  const auto resend = [&](Window::Entry& entry) {
    resent.push_back(*entry.item);
    return true;
  };
  EXPECT_EQ(rig.window.resend_due(350, 100, 10, resend), 1u);
  EXPECT_EQ(resent, (std::vector<int>{0})) << "1 arrived; 2 (out for 50) is not due, nor what follows";
  EXPECT_EQ(rig.window.resend_due(kLongAgo, 100, 2, resend), 2u);
  EXPECT_EQ(resent, (std::vector<int>{0, 0, 2})) << "at most two, the SACKed 1 skipped";
  EXPECT_EQ(rig.window.resend_due(kLongAgo, 100, 10, resend), 0u) << "the oldest was resent just now";
}

TEST(SendWindow, ARepairCutShortByPacingGoesOnWhereItStopped) {
  Rig rig;
  rig.send(10, 100);
  rig.ack(0, {4, 5, 6, 7, 8, 9});
  rig.repair(kLongAgo, 10, 2);
  EXPECT_EQ(rig.resent, (std::vector<int>{0, 1}));
  EXPECT_TRUE(rig.window.holes_waiting());
  rig.repair(kLongAgo, 10);
  EXPECT_EQ(rig.resent, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_FALSE(rig.window.holes_waiting());
}

TEST(SendWindow, SequenceNumbersWrapAtTwoToThe32) {
  Rig rig(0xfffffffeu);
  rig.send(8, 100);
  rig.ack(1, {3, 4, 5});  // the hole is 1 (sequence 0xffffffff), the frontier past the wrap
  EXPECT_EQ(rig.released, (std::vector<int>{0, 3, 4, 5}));
  rig.repair(kLongAgo, 10);
  EXPECT_EQ(rig.resent, (std::vector<int>{1, 2}));
  rig.ack(6);
  EXPECT_EQ(rig.window.una(), 4u);
  EXPECT_EQ(rig.window.in_flight(), 2u);
  EXPECT_EQ(rig.released, (std::vector<int>{0, 3, 4, 5, 1, 2}));
}

}  // namespace
}  // namespace pagewire::transport
