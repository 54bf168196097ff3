// The receive side of a stream's window as pure logic (ReceiveWindow), without EAL: what
// is taken, held and handed on in order, and what the ACKs report, including sequence
// numbers that wrap at 2^32 and reordering beyond the window.
#include "pagewire/transport/receive_window.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace pagewire::transport {
namespace {

using Window = ReceiveWindow<int>;
using Admission = Window::Admission;

// Frames `first` + offset arrive in the order of `offsets`; each is applied in order or
// held, as a stream does. Returns the offsets in the order they were handed on.
std::vector<int> arrive(Window& window, std::uint32_t first, const std::vector<int>& offsets) {
  static std::vector<int> items(64);
  for (int i = 0; i < 64; ++i) items[i] = i;
  std::vector<int> applied;
  for (int offset : offsets) {
    const std::uint32_t seq = first + static_cast<std::uint32_t>(offset);
    const Admission admission = window.admit(seq);
    if (admission == Admission::kAhead) window.hold(seq, &items[offset]);
    if (admission != Admission::kInOrder) continue;
    applied.push_back(offset);
    window.advance();
    for (auto next = window.take_next(); next.arrived; next = window.take_next()) applied.push_back(*next.item);
  }
  return applied;
}

TEST(ReceiveWindow, HoldsWhatComesAheadAndHandsItOnInOrder) {
  Window window(16);
  const auto applied = arrive(window, 0, {0, 2, 3, 5, 1, 2, 4, 6});
  EXPECT_EQ(applied, (std::vector<int>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(window.next(), 7u);
  EXPECT_EQ(window.held(), 0u);
  EXPECT_EQ(window.advertised(), 15u);
}

TEST(ReceiveWindow, DuplicatesAndFramesBeyondTheWindowAreTurnedAway) {
  Window window(8);
  int item = 0;
  EXPECT_EQ(window.admit(0), Admission::kInOrder);
  window.advance();
  EXPECT_EQ(window.admit(0), Admission::kDuplicate) << "below the cumulative ACK";
  EXPECT_EQ(window.admit(3), Admission::kAhead);
  window.hold(3, &item);
  EXPECT_EQ(window.admit(3), Admission::kDuplicate) << "held already";
  EXPECT_EQ(window.held_at(3), &item);
  EXPECT_EQ(window.admit(1 + 7), Admission::kAhead) << "the last slot of the window";
  EXPECT_EQ(window.admit(1 + 8), Admission::kOutside) << "reordered beyond the window";
  EXPECT_EQ(window.admit(1 + 0x80000000u), Admission::kDuplicate) << "half the sequence space behind";
  EXPECT_EQ(window.held_at(1 + 8), nullptr);
}

TEST(ReceiveWindow, SequenceNumbersWrapAtTwoToThe32) {
  const std::uint32_t first = 0xfffffffdu;  // 2^32 - 3: offsets 3 and on wrap to 0, 1, ...
  Window window(8, first);
  const auto applied = arrive(window, first, {1, 3, 4, 0, 2, 5});
  EXPECT_EQ(applied, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(window.next(), 3u) << "wrapped past zero";
  EXPECT_EQ(window.admit(0xffffffffu), Admission::kDuplicate) << "before the wrap: behind us";
  EXPECT_EQ(window.admit(3 + 7), Admission::kAhead);
  EXPECT_EQ(window.admit(3 + 8), Admission::kOutside);
}

TEST(ReceiveWindow, AcksReportTheBitsAfterTheCumulativeAckAndRecentBlocksFurtherOut) {
  Window window(1024);
  int item = 0;
  window.advance();  // next() = 1
  for (std::uint32_t seq : {2u, 3u, 65u}) window.hold(seq, &item);  // within the 64 bits after next()
  for (std::uint32_t seq : {130u, 131u}) window.hold(seq, &item);    // block 128
  window.hold(300, &item);                                           // block 256
  const auto blocks = window.blocks();
  EXPECT_EQ(blocks.after_next, (std::uint64_t{1} << 0) | (std::uint64_t{1} << 1) | (std::uint64_t{1} << 63));
  // Block 0 lies inside the selective bits (2..65); block 64 reaches beyond them.
  ASSERT_EQ(blocks.count, 3u);
  EXPECT_EQ(blocks.base[0], 256u) << "most recent first";
  EXPECT_EQ(blocks.received[0], std::uint64_t{1} << (300 - 256));
  EXPECT_EQ(blocks.base[1], 128u);
  EXPECT_EQ(blocks.received[1], (std::uint64_t{1} << 2) | (std::uint64_t{1} << 3));
  EXPECT_EQ(blocks.base[2], 64u);
  EXPECT_EQ(blocks.received[2], std::uint64_t{1} << 1);
}

TEST(ReceiveWindow, AtMostTheWireBlocksAreReportedAndAcknowledgedOnesCountAsReceived) {
  Window window(4096);
  int item = 0;
  for (std::uint32_t block = 1; block <= kAckSackBlocks + 2; ++block) window.hold(block * 64 + 64, &item);
  auto blocks = window.blocks();
  EXPECT_EQ(blocks.count, kAckSackBlocks) << "the oldest fall off";
  EXPECT_EQ(blocks.base[0], (kAckSackBlocks + 2) * 64 + 64);
  // Everything up to 129 arrives: block 128's frames below next() count as received.
  for (std::uint32_t seq = 0; seq < 128; ++seq) window.advance();
  EXPECT_EQ(window.take_next().item, &item);  // 128 was held
  blocks = window.blocks();
  for (std::size_t b = 0; b < blocks.count; ++b) EXPECT_NE(blocks.base[b], 128u) << "acknowledged: not reported";
}

// A frame applied as it arrived is reported received and passed in order, with nothing
// handed back for it; a copy of it is a duplicate; the frames held around it come in order.
TEST(ReceiveWindow, FramesAppliedAheadAreAcknowledgedAndPassedWithoutBeingHeld) {
  Window window(16);
  int held = 7;
  ASSERT_EQ(window.admit(2), Admission::kAhead);
  window.applied_ahead(2);
  ASSERT_EQ(window.admit(3), Admission::kAhead);
  window.hold(3, &held);
  EXPECT_EQ(window.admit(2), Admission::kDuplicate) << "applied already";
  EXPECT_TRUE(window.arrived(2));
  EXPECT_EQ(window.held_at(2), nullptr);
  EXPECT_EQ(window.held(), 1u) << "only what holds a frame counts";
  EXPECT_EQ(window.blocks().after_next, 0b110u) << "2 and 3 after next() = 0";

  EXPECT_FALSE(window.take_next().arrived) << "0 is the hole";
  window.advance();  // 0
  window.advance();  // 1
  const auto applied = window.take_next();
  EXPECT_TRUE(applied.arrived);
  EXPECT_EQ(applied.item, nullptr) << "nothing held for 2";
  const auto taken = window.take_next();
  EXPECT_EQ(taken.item, &held);
  EXPECT_FALSE(window.take_next().arrived);
  EXPECT_EQ(window.next(), 4u);
  EXPECT_EQ(window.held(), 0u);
  EXPECT_EQ(window.admit(2), Admission::kDuplicate);
  EXPECT_FALSE(window.arrived(2 + 16)) << "the slot is free for the next lap";
}

// A held frame applied later, with one that completed its run: handed back once, and from
// then on only remembered as arrived.
TEST(ReceiveWindow, AHeldFrameAppliedAheadIsHandedBackAndRememberedAsArrived) {
  Window window(16);
  int first_part = 1;
  window.hold(4, &first_part);
  window.applied_ahead(5);  // the run's last frame, which completed it
  EXPECT_EQ(window.applied_held(4), &first_part);
  EXPECT_EQ(window.held(), 0u);
  EXPECT_EQ(window.held_at(4), nullptr);
  EXPECT_TRUE(window.arrived(4));
  EXPECT_EQ(window.admit(4), Admission::kDuplicate);
  EXPECT_EQ(window.blocks().after_next, 0b11000u) << "4 and 5 after next() = 0";
  for (std::uint32_t seq = 0; seq < 4; ++seq) window.advance();
  EXPECT_TRUE(window.take_next().arrived);
  EXPECT_EQ(window.take_next().item, nullptr);
  EXPECT_EQ(window.next(), 6u);
}

TEST(ReceiveWindow, ReleaseAllHandsBackEveryHeldItem) {
  Window window(8);
  int a = 0, b = 0;
  window.hold(2, &a);
  window.hold(5, &b);
  window.applied_ahead(6);
  std::vector<int*> released;
  window.release_all([&](int* item) { released.push_back(item); });
  EXPECT_EQ(released.size(), 2u);
  EXPECT_EQ(window.held(), 0u);
  EXPECT_EQ(window.held_at(2), nullptr);
  EXPECT_FALSE(window.arrived(6));
}

}  // namespace
}  // namespace pagewire::transport
