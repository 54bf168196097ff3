// The transport end to end in one process (ring_harness.hpp): clean and impaired paths,
// long distance, MTU clamps, refusals and hostile frames.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <span>
#include <thread>

#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/pre_shared_key.hpp"
#include "pagewire/rigs/ring_pair.hpp"
#include "ring_harness.hpp"

namespace pagewire::transport {
namespace {

using test::Bytes;
using namespace test_ring;

// A migration of `pages` pages (guest `seed`) with `streams` streams and `rounds` rounds of
// dirtied pages after the first, checked byte for byte.
MigrationResult migrate_exactly(Harness& harness, std::uint16_t streams, std::uint64_t pages, std::uint64_t seed,
                                int rounds) {
  Bytes guest = make_guest(pages, seed);
  Bytes destination(guest.size());
  auto result = migrate(harness, guest, destination, rounds, harness.config(streams, pages, true),
                        harness.config(streams, pages, false));
  EXPECT_EQ(result.source_error, "");
  EXPECT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  return result;
}

TEST(TransportRing, CleanPathTwoStreamsThreeRoundsArriveExactly) {
  Harness harness(2, {});
  const auto result = migrate_exactly(harness, 2, 2048, 1, 3);
  EXPECT_EQ(result.path_mtu, 9000);
  const auto delta = static_cast<std::size_t>(pagecodec::Encoding::kDelta);
  EXPECT_GT(result.source.encoded.pages[delta], 0u) << "re-dirtied pages went as DELTA";
  EXPECT_EQ(result.destination.decoded.pages[delta], result.source.encoded.pages[delta]);
  EXPECT_EQ(result.destination.streams.delta_base_mismatch, 0u);
  // No hole can exist on a lossless, in-order link. Timers may still fire: three threads
  // share two vCPUs here, and a thread descheduled for longer than the 5 ms RTO makes a
  // stream resend up to a burst (32 frames) at once. More than two such stalls per stream
  // would be a timer firing early.
  EXPECT_EQ(result.source.streams.retransmits_sack, 0u);
  EXPECT_LE(result.source.streams.retransmits_timeout, 2u * 2 * 32);
}

// Stream counts asked for by each end over a link of two queue pairs: the session runs the
// smallest of both offers and the pairs, each end saying why when it runs fewer than it
// asked for. The pages split differently but arrive exactly.
MigrationResult migrate_asking_for(std::uint16_t source_streams, std::uint16_t destination_streams) {
  Harness harness(2, {});
  Bytes guest = make_guest(2048, 13);
  Bytes destination(guest.size());
  auto result = migrate(harness, guest, destination, 2, harness.config(source_streams, 2048, true),
                        harness.config(destination_streams, 2048, false));
  EXPECT_EQ(result.source_error, "");
  EXPECT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  return result;
}

TEST(TransportRing, EndsOfferingDifferentStreamCountsRunTheSmaller) {
  const auto result = migrate_asking_for(2, 1);
  EXPECT_EQ(result.source_streams, 1);
  EXPECT_EQ(result.destination_streams, 1);
  EXPECT_EQ(result.source_streams_note, "1 of the 2 streams asked for: the peer takes 1");
  EXPECT_EQ(result.destination_streams_note, "");
}

TEST(TransportRing, MoreStreamsThanQueuePairsDegradeToThePairs) {
  const auto result = migrate_asking_for(3, 4);
  EXPECT_EQ(result.source_streams, 2);
  EXPECT_EQ(result.destination_streams, 2);
  EXPECT_NE(result.source_streams_note.find("2 of the 3 streams asked for: port "), std::string::npos)
      << result.source_streams_note;
  EXPECT_NE(result.source_streams_note.find(" has 2 queue pairs"), std::string::npos) << result.source_streams_note;
  EXPECT_NE(result.destination_streams_note.find("2 of the 4 streams asked for"), std::string::npos)
      << result.destination_streams_note;
}

TEST(TransportRing, LossDuplicationReorderingCorruptionAndAnMtuClampNeverProduceWrongData) {
  // Both ends advertise 9000; a middlebox drops anything above 3000 bytes.
  Harness harness(2, {.drop = 0.01, .duplicate = 0.01, .reorder = 0.02, .corrupt = 0.005, .mtu_clamp = 3000});
  Bytes guest = make_guest(2048, 2);
  Bytes destination(guest.size());
  const auto result = migrate(harness, guest, destination, 3, harness.config(2, 2048, true),
                              harness.config(2, 2048, false));
  ASSERT_TRUE(result.source_error.empty() && result.destination_error.empty())
      << "source: " << result.source_error << "; destination: " << result.destination_error
      << "; source resent " << result.source.streams.retransmits_sack << " on SACK, "
      << result.source.streams.retransmits_timeout << " on timeout; link dropped "
      << harness.link().counters().dropped.load();
  EXPECT_LE(result.path_mtu, 3000);
  EXPECT_GT(result.path_mtu, 3000 - 8) << "the probe found the clamp, not a lower size";
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_GT(result.source.streams.retransmits_timeout + result.source.streams.retransmits_sack, 0u);
  EXPECT_GT(result.destination.streams.duplicates, 0u);
  EXPECT_GT(result.destination.streams.out_of_order, 0u);
  EXPECT_GT(drops(result.destination, FrameDrop::kBadChecksum) + drops(result.source, FrameDrop::kBadChecksum) +
                drops(result.destination, FrameDrop::kNotForUs) + drops(result.destination, FrameDrop::kBadIpHeader) +
                drops(result.destination, FrameDrop::kTruncated),
            0u)
      << "corrupted frames were detected and dropped";
  EXPECT_EQ(result.destination.streams.delta_base_mismatch, 0u);
}

// Behind a hole, runs of frames that are whole records are applied as they arrive rather
// than held, but for those with a COPY (the page it names may be in the hole). Every DELTA
// still finds its base (an earlier round's) and the memory arrives exactly. At MTU 1500 a
// page's record spans three frames, and a DEFLATE batch dozens: the run is applied when
// its last frame comes.
class AppliedAhead : public ::testing::TestWithParam<std::uint16_t> {};

TEST_P(AppliedAhead, FramesAfterAHoleAreAppliedAsTheyArriveAndCopiesWaitTheirTurn) {
  Harness harness(1, {.drop = 0.02, .reorder = 0.02}, GetParam());
  const auto result = migrate_exactly(harness, 1, 2048, 21, 3);
  const StreamCounters& received = result.destination.streams;
  EXPECT_GT(received.applied_ahead, received.out_of_order / 2) << "most frames after a hole went ahead";
  EXPECT_LE(received.applied_ahead, received.out_of_order);
  const auto delta = static_cast<std::size_t>(pagecodec::Encoding::kDelta);
  EXPECT_GT(result.source.encoded.pages[delta], 0u);
  EXPECT_EQ(result.destination.decoded.pages[delta], result.source.encoded.pages[delta]);
  EXPECT_EQ(received.delta_base_mismatch, 0u);
  EXPECT_EQ(received.copy_source_mismatch, 0u);
  EXPECT_EQ(received.record_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(TransportRing, AppliedAhead, ::testing::Values(9000, 1500),
                         [](const auto& mtu) { return "Mtu" + std::to_string(mtu.param); });

// 150 ms RTT, as long-distance vMotion allows, +-2 ms jitter (frames overtake each other),
// and a 400 Mbit/s bottleneck whose 20 ms queue tail-drops what a window overshoots.
const rigs::LinkImpairment kLongPath{.delay_us = 75000, .jitter_us = 2000, .rate_bytes_per_second = 50e6};

// Both ends' configurations for kLongPath: windows that cover its bandwidth-delay product
// (50 MB/s x 150 ms = 7.5 MB, ~840 frames).
std::pair<SessionConfig, SessionConfig> long_path_configs(const Harness& harness, std::uint64_t pages) {
  std::pair<SessionConfig, SessionConfig> configs{harness.config(1, pages, true), harness.config(1, pages, false)};
  for (auto* c : {&configs.first, &configs.second}) {
    c->tuning.window_frames = 1024;
    c->tuning.receive_window_frames = 4096;
  }
  return configs;
}

TEST(TransportRing, LongDistancePathWithJitterAndARateCapArrivesExactly) {
  Harness harness(1, kLongPath, 9000, 8192);
  Bytes guest = make_guest(2048, 8);
  Bytes destination(guest.size());
  const auto [source_config, destination_config] = long_path_configs(harness, 2048);
  const auto result = migrate(harness, guest, destination, 2, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_EQ(result.path_mtu, 9000) << "probes wait for the path's RTT, not a LAN timeout";
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_GT(result.destination.streams.out_of_order, 0u) << "jitter reordered frames";
  EXPECT_GE(result.source.streams.srtt_us, 150000u);
}

// kLongPath at half the rate: a source slowed by a loaded machine (sanitizers, tests run side
// by side) still sends faster than 200 Mbit/s, so a window left alone overruns the queue
// every time (at 400 Mbit/s, it sometimes did not).
const rigs::LinkImpairment kNarrowLongPath{.delay_us = 75000, .jitter_us = 2000, .rate_bytes_per_second = 25e6};

// A long path with congestion control left to decide: a 150 ms round trip turns it on, the
// sender paces itself to the bottleneck instead of overrunning its queue every round trip.
TEST(TransportRing, CongestionControlComesOnForALongPathAndSparesItsQueue) {
  std::uint64_t queue_drops[2] = {};
  for (bool controlled : {false, true}) {
    Harness harness(1, kNarrowLongPath, 9000, 8192);
    Bytes guest = make_guest(4096, 12);
    Bytes destination(guest.size());
    auto [source_config, destination_config] = long_path_configs(harness, 4096);
    source_config.tuning.congestion_control =
        controlled ? StreamTuning::CongestionControl::kAuto : StreamTuning::CongestionControl::kOff;
    const auto result = migrate(harness, guest, destination, 1, source_config, destination_config);
    ASSERT_EQ(result.source_error, "");
    ASSERT_EQ(result.destination_error, "");
    EXPECT_TRUE(guest == destination);
    EXPECT_EQ(result.congestion_controlled, controlled);
    queue_drops[controlled] = harness.link().counters().queue_dropped.load();
  }
  EXPECT_GT(queue_drops[0], 0u) << "without control, the window overruns the bottleneck's queue";
  EXPECT_LT(queue_drops[1], queue_drops[0] / 4 + 1);
}

// A stream's frames beyond the port's pool: none until it asks, then doubling, never past
// the memory bound, and every frame handed out once.
TEST(FrameReserve, GrowsWhenAskedAndStopsAtItsBound) {
  constexpr std::uint16_t kRoom = 2048 + RTE_PKTMBUF_HEADROOM;
  rte_mempool* shared = rte_pktmbuf_pool_create("fr_shared", 63, 0, 0, kRoom, SOCKET_ID_ANY);
  ASSERT_NE(shared, nullptr);
  const std::uint64_t bound_bytes = std::uint64_t{150} * (kRoom + sizeof(rte_mbuf));
  std::vector<rte_mbuf*> taken;
  {
    FrameReserve reserve("fr_test", kRoom, SOCKET_ID_ANY, 63);
    auto take_all = [&] {
      while (rte_mbuf* mbuf = reserve.alloc(shared)) taken.push_back(mbuf);
    };
    take_all();
    EXPECT_EQ(taken.size(), 63u) << "the shared pool first";
    EXPECT_FALSE(*reserve.grow(bound_bytes)) << "nobody asked";
    reserve.ask(100);
    EXPECT_TRUE(*reserve.grow(bound_bytes));
    EXPECT_EQ(reserve.frames(), 126u) << "at least doubled";
    take_all();
    EXPECT_EQ(taken.size(), 126u);
    reserve.ask(1000);
    EXPECT_TRUE(*reserve.grow(bound_bytes));
    EXPECT_EQ(reserve.frames(), 150u) << "stopped at the bound";
    EXPECT_FALSE(*reserve.grow(bound_bytes));
    take_all();
    EXPECT_EQ(taken.size(), 150u);
    std::sort(taken.begin(), taken.end());
    EXPECT_EQ(std::adjacent_find(taken.begin(), taken.end()), taken.end()) << "a frame handed out twice";
    EXPECT_EQ(reserve.grown_bytes(), std::uint64_t{87} * (kRoom + sizeof(rte_mbuf)));
    for (rte_mbuf* mbuf : taken) rte_pktmbuf_free(mbuf);  // before the reserve's pools go
  }
  rte_mempool_free(shared);
}

// 150 ms and 2 Gbit/s with every window option left alone: a bandwidth-delay product of
// 37.5 MB, 36 times the window of a LAN and 4 times the frames the port keeps for a stream.
// The window follows what the pacing controller measures and the frames behind it are
// added as it grows (FrameReserve). Once the path is measured (round 0), the second pass
// over the guest must have had a window that carries >= 0.8 of the cap (the old fixed
// window, 1024 frames, carried at most 0.24), and must have gone at more than half of it;
// the last round trip, which no window shortens, is left out of its time. RAW pages: the
// wire, not a codec, sets the pace. The rate itself is 0.85-0.93 of the cap under ASan with
// two busy loops beside it, and 0.6-0.85 with three (the sender then gets a third of a CPU
// and measures less bandwidth): that figure lives in docs/benchmarks.md, the window here.
TEST(TransportRing, LongFatPathIsFilledWithDefaultWindows) {
  constexpr double kCapBytesPerSecond = 250e6;
  constexpr double kRttSeconds = 0.150;
  Harness harness(1, {.delay_us = 75000, .rate_bytes_per_second = kCapBytesPerSecond});
  constexpr std::uint64_t kPages = 64 * 1024;
  Bytes guest = make_guest(kPages, 21);
  Bytes destination(guest.size());
  SessionConfig source_config = harness.config(1, kPages, true);
  SessionConfig destination_config = harness.config(1, kPages, false);
  for (auto* c : {&source_config, &destination_config}) c->tuning = StreamTuning{};
  source_config.policy = *pagecodec::policy_named("raw");
  source_config.policy.duplicates = false;  // every pass sends every non-zero page in full

  MigrationResult result;
  DestinationThread receiver(harness, destination_config, destination, &result);
  auto connected = SourceSession::connect(source_config, harness.source_port(), pages_of(guest, source_config));
  ASSERT_TRUE(connected.ok()) << connected.error().message;
  SourceSession& source = *connected.value();
  ASSERT_TRUE(source.stream(0).congestion_controlled()) << "a 150 ms path turns congestion control on";
  std::vector<std::uint64_t> all(kPages);
  std::iota(all.begin(), all.end(), 0);
  source.begin_round(all, 1);
  ASSERT_TRUE(source.run_until_idle(120000).ok());
  const std::uint64_t sent_before = source.totals().streams.payload_bytes_sent;
  const auto start = std::chrono::steady_clock::now();
  source.begin_round(all, 2);
  ASSERT_TRUE(source.run_until_idle(120000).ok());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto second_pass_bytes = static_cast<double>(source.totals().streams.payload_bytes_sent - sent_before);
  source.begin_finish();
  ASSERT_TRUE(source.run_until_idle(60000).ok());
  receiver.join();
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";

  const double share_of_cap = second_pass_bytes / (seconds - kRttSeconds) / kCapBytesPerSecond;
  const StreamCounters totals = source.totals().streams;
  std::cout << "second pass at " << share_of_cap << " of the cap\n";
  const double frames_for_cap = 0.8 * kCapBytesPerSecond * kRttSeconds / static_cast<double>(payload_for_mtu(9000));
  EXPECT_GE(static_cast<double>(totals.peak_in_flight), frames_for_cap)
      << "the window never grew to carry 0.8 of the cap";
  EXPECT_GE(share_of_cap, 0.5) << second_pass_bytes / 1e6 << " MB in " << seconds << " s; peak in flight "
                               << totals.peak_in_flight << " frames, destination's window " << totals.peer_window
                               << ", frames for the window " << harness.source_port().frame_reserve(0)->frames();
  EXPECT_GT(totals.peak_in_flight, 4096u) << "beyond the old fixed receive window";
  EXPECT_GT(harness.source_port().frame_reserve(0)->frames(), 1024u) << "the window's frames grew from the port's share";
  EXPECT_EQ(source.window_note(), "");
}

TEST(TransportRing, BurstsOfLossArriveExactly) {
  // Gilbert-Elliott loss: bursts of ~5 frames, one burst every ~200 frames each way.
  Harness harness(2, {.burst_enter = 0.005, .burst_exit = 0.2});
  const auto result = migrate_exactly(harness, 2, 2048, 9, 3);
  EXPECT_GT(harness.link().counters().burst_dropped.load(), 0u);
  EXPECT_GT(result.source.streams.retransmits_sack + result.source.streams.retransmits_timeout +
                result.source.streams.tail_probes,
            0u);
}

// One frame in twenty lost, each way (ACKs and RESENDs too), at random: still byte-exact.
TEST(TransportRing, FivePercentRandomLossArrivesExactly) {
  Harness harness(2, {.drop = 0.05});
  const auto result = migrate_exactly(harness, 2, 2048, 10, 2);
  EXPECT_GT(harness.link().counters().dropped.load(), 10u);
  EXPECT_GT(result.source.streams.retransmits_sack + result.source.streams.retransmits_timeout, 0u);
}

// A long-distance path that also loses and reorders: 150 ms RTT with jitter, 1 % loss and
// 2 % of frames held back behind later ones, each way.
TEST(TransportRing, LongPathWithLossAndReorderingArrivesExactly) {
  rigs::LinkImpairment lossy_long_path = kLongPath;
  lossy_long_path.drop = 0.01;
  lossy_long_path.reorder = 0.02;
  Harness harness(1, lossy_long_path, 9000, 8192);
  Bytes guest = make_guest(2048, 11);
  Bytes destination(guest.size());
  const auto [source_config, destination_config] = long_path_configs(harness, 2048);
  const auto result = migrate(harness, guest, destination, 2, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_GT(harness.link().counters().dropped.load(), 0u);
  EXPECT_GT(harness.link().counters().reordered.load(), 0u);
  EXPECT_GE(result.source.streams.srtt_us, 150000u);
}

TEST(TransportRing, RefusedDeltasAreAskedForAndResentInFull) {
  // Between rounds the destination forgets what its pages hold (as a hypervisor that
  // discarded them would): every DELTA built on them is refused, RESEND asks for the pages,
  // and they come again in full, all before the stream may finish.
  Harness harness(1, {});
  Bytes guest = make_guest(1024, 10);
  Bytes destination(guest.size());
  const auto result = migrate(harness, guest, destination, 4, harness.config(1, 1024, true),
                              harness.config(1, 1024, false), [](DestinationSession& session) {
                                for (std::uint64_t page = 0; page < session.region_pages(); ++page) {
                                  session.forget_page(page);
                                }
                              });
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_GT(result.destination.streams.delta_base_mismatch, 0u);
  EXPECT_GT(result.destination.streams.resend_requests, 0u);
  EXPECT_GE(result.source.streams.pages_resent, result.destination.streams.delta_base_mismatch / 2);
  EXPECT_GT(result.source.streams.pages_resent, 0u);
}

TEST(TransportRing, DuplicatePagesGoAsCopiesOfPagesTheDestinationHolds) {
  // The second half of the guest repeats the first: each such page goes as a 40-byte COPY of
  // its twin, which the destination copies from its own memory. After the bulk round the
  // source can name every page it sent as a copy of a given one (what a dirty twin calls for).
  Harness harness(2, {});
  Bytes guest(1024 * kPage);
  std::mt19937_64 rng(14);
  for (std::uint64_t p = 0; p < 512; ++p) {
    pagewire::test::fill_page(guest.data() + p * kPage, kPage, pagewire::test::PageKind::kRandom, rng);
  }
  std::memcpy(guest.data() + 512 * kPage, guest.data(), 512 * kPage);
  Bytes destination(guest.size());
  const auto copy = static_cast<std::size_t>(pagecodec::Encoding::kCopy);
  std::uint64_t copies_after_bulk = 0, named = 0;
  bool checked = false;
  const auto result = migrate(
      harness, guest, destination, 2, harness.config(1, 1024, true), harness.config(1, 1024, false), {},
      SourceSession::RoundPages::kMayChange, [&](SourceSession& source) {
        if (checked) return;
        checked = true;
        copies_after_bulk = source.totals().encoded.pages[copy];
        std::vector<std::uint64_t> first_half(512), stale;
        std::iota(first_half.begin(), first_half.end(), 0);
        source.append_copies_of(first_half, &stale);
        named = stale.size();
        EXPECT_TRUE(std::all_of(stale.begin(), stale.end(), [](std::uint64_t page) { return page >= 512; }));
        stale.clear();
        source.append_copies_of(std::vector<std::uint64_t>{1000}, &stale);
        EXPECT_TRUE(stale.empty()) << "page 1000 is no page's source";
      });
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_EQ(copies_after_bulk, 512u) << "every page of the second half went as a COPY";
  EXPECT_EQ(named, copies_after_bulk);
  EXPECT_EQ(result.destination.decoded.pages[copy], result.source.encoded.pages[copy]);
  EXPECT_EQ(result.destination.streams.copy_source_mismatch, 0u);
}

TEST(TransportRing, UnchecksummedMemoryLinkWithFramesEncodedInPlace) {
  // No deflate: records are encoded straight into frames; no UDP checksum on this path.
  // The guest may write its pages while they are in flight (rounds not declared stable):
  // every page is copied into its frame, none sent by reference.
  Harness harness(2, {});
  Bytes guest = make_guest(1024, 6);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 1024, true);
  auto destination_config = harness.config(2, 1024, false);
  source_config.policy.deflate = false;
  const auto result = migrate(harness, guest, destination, 2, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GT(result.source.encoded.pages[static_cast<std::size_t>(pagecodec::Encoding::kDelta)], 0u);
  EXPECT_EQ(result.source.streams.pages_by_reference, 0u);
}

TEST(TransportRing, OddMtuClampSplitsPagesAcrossFrames) {
  Harness harness(1, {.mtu_clamp = 1400});
  Bytes guest = make_guest(512, 3);
  Bytes destination(guest.size());
  auto source_config = harness.config(1, 512, true);
  source_config.policy.deflate = false;  // RAW 4 KiB pages: each spans several 1400-byte frames
  const auto result = migrate(harness, guest, destination, 2, source_config, harness.config(1, 512, false));
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_LE(result.path_mtu, 1400);
  EXPECT_GT(result.path_mtu, 1400 - 8);
  EXPECT_GT(harness.link().counters().clamped.load(), 0u) << "the first, full-size probe was dropped";
  EXPECT_TRUE(guest == destination);
}

// A port with RX scatter hands frames over as chains of small buffers, cut at any byte:
// inside a record's header, a page, a seal's trailer. Clear, authenticated and encrypted
// frames all arrive exactly, through loss, duplication and reordering.
enum class Sealing { kNone, kAuthenticated, kEncrypted };
class ScatteredFrames : public ::testing::TestWithParam<Sealing> {};

TEST_P(ScatteredFrames, ArriveExactly) {
  Harness harness(2, {.drop = 0.01, .duplicate = 0.01, .reorder = 0.01, .scatter_bytes = 1000});
  Bytes guest = make_guest(1024, 7);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 1024, true);
  auto destination_config = harness.config(2, 1024, false);
  source_config.policy.deflate = false;  // RAW pages and deltas: records cross segments
  if (GetParam() != Sealing::kNone) {
    const PreSharedKey key = PreSharedKey::generate();
    for (SessionConfig* config : {&source_config, &destination_config}) {
      config->security.key = key;
      config->security.encrypt = GetParam() == Sealing::kEncrypted;
    }
  }
  const auto result = migrate(harness, guest, destination, 2, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_GT(harness.link().counters().scattered.load(), 300u) << "frames did arrive as chains";
  EXPECT_EQ(drops(result.destination, FrameDrop::kMultiSegment), 0u);
  EXPECT_EQ(drops(result.destination, FrameDrop::kBadTag), 0u);
  EXPECT_EQ(result.destination.streams.record_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(TransportRing, ScatteredFrames,
                         ::testing::Values(Sealing::kNone, Sealing::kAuthenticated, Sealing::kEncrypted),
                         [](const auto& info) {
                           return std::string(info.param == Sealing::kNone            ? "Clear"
                                              : info.param == Sealing::kAuthenticated ? "Authenticated"
                                                                                      : "Encrypted");
                         });

// Rounds whose pages the guest cannot write (the switchover's, guest paused; this rig's
// guest is only written between rounds) send RAW pages from guest memory by reference:
// whole pages at MTU 9000, slices of pages split over frames at MTU 1500. Retransmissions
// after loss read the guest again; duplicates, reordering and a port that scatters the
// chains anew change nothing: the destination holds exactly the source.
class StableRounds : public ::testing::TestWithParam<std::uint16_t> {};

TEST_P(StableRounds, SendPagesByReferenceAndArriveExactly) {
  Harness harness(2, {.drop = 0.01, .duplicate = 0.01, .reorder = 0.01, .corrupt = 0.002, .scatter_bytes = 1000},
                  GetParam());
  Bytes guest = make_guest(2048, 9);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 2048, true);
  source_config.policy.deflate = false;
  auto destination_config = harness.config(2, 2048, false);
  const auto result = migrate(harness, guest, destination, 2, source_config, destination_config, {},
                              SourceSession::RoundPages::kStable);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_EQ(result.path_mtu, GetParam());
  EXPECT_TRUE(guest == destination) << "destination memory differs from the source";
  EXPECT_GT(result.source.streams.pages_by_reference, 1000u) << "pages went by reference";
  EXPECT_GT(result.source.streams.retransmits_sack + result.source.streams.retransmits_timeout, 0u);
  EXPECT_EQ(result.destination.streams.record_errors, 0u);
}

INSTANTIATE_TEST_SUITE_P(TransportRing, StableRounds, ::testing::Values(9000, 1500),
                         [](const auto& info) { return "Mtu" + std::to_string(info.param); });

TEST(TransportRing, HandshakeRefusalsSayWhatDiffersOnBothSides) {
  Harness harness(1, {});
  Bytes guest = make_guest(64, 4);
  Bytes destination(guest.size());
  auto destination_config = harness.config(1, 64, false);
  destination_config.page_size = 8192;
  destination_config.region_pages = 32;
  destination_config.hello_timeout_ms = 1500;  // a refused HELLO does not end its wait
  auto result = migrate(harness, guest, destination, 0, harness.config(1, 64, true), destination_config);
  EXPECT_NE(result.source_error.find("refused"), std::string::npos) << result.source_error;
  EXPECT_NE(result.source_error.find("page size 4096 != destination's 8192"), std::string::npos) << result.source_error;
  EXPECT_NE(result.destination_error.find("page size"), std::string::npos) << result.destination_error;

  destination_config = harness.config(1, 32, false);  // a region too small for the source
  destination_config.hello_timeout_ms = 1500;
  result = migrate(harness, guest, destination, 0, harness.config(1, 64, true), destination_config);
  EXPECT_NE(result.source_error.find("source region of 64 pages > destination region of 32 pages"),
            std::string::npos)
      << result.source_error;
}

// A destination that answers HELLO with an MTU too small to carry a frame's headers: the
// source refuses it instead of computing a frame payload from it.
TEST(TransportRing, AdvertisedMtuBelowTheMinimumIsRefused) {
  Harness harness(1, {});
  Bytes guest = make_guest(16, 7);
  const auto source_config = harness.config(1, 16, true);
  const auto fake_config = harness.config(1, 16, false);
  std::atomic<bool> stop{false};
  std::thread fake([&] {
    const auto& port = harness.destination_port();
    rte_mbuf* burst[32];
    while (!stop) {
      const std::uint16_t n = rte_eth_rx_burst(port.id(), 0, burst, 32);
      for (std::uint16_t i = 0; i < n; ++i) {
        const ReceivedFrame frame = parse_frame(burst[i], fake_config.path, 1, 0);
        if (frame.drop == FrameDrop::kNone && frame.type == FrameType::kHello) {
          HelloPayload hello;
          std::memcpy(&hello, frame.payload, sizeof hello);
          hello.mtu.set(100);
          rte_mbuf* reply = rte_pktmbuf_alloc(port.pool());
          std::memcpy(frame_payload(reply), &hello, sizeof hello);
          const Nonce nonce{};  // a keyless HELLO_ACK carries the destination's nonce
          std::memcpy(frame_payload(reply) + sizeof hello, nonce.data(), nonce.size());
          finish_frame(reply, fake_config.path,
                       FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = frame.session},
                       sizeof hello + nonce.size());
          if (rte_eth_tx_burst(port.id(), 0, &reply, 1) == 0) rte_pktmbuf_free(reply);
        }
        rte_pktmbuf_free(burst[i]);
      }
    }
  });
  auto connected = SourceSession::connect(source_config, harness.source_port(), pages_of(guest, source_config));
  stop = true;
  fake.join();
  ASSERT_FALSE(connected.ok());
  EXPECT_NE(connected.error().message.find("advertises MTU 100"), std::string::npos) << connected.error().message;
}

// A port whose last allocation fails (here a pool already holds the name its zero-copy
// segments want) frees what it made and leaves the device as it was: the next open of the
// same device succeeds and carries a frame.
TEST(TransportRing, AFailedPortOpenLeavesNothingBehind) {
  auto pair = rigs::RingPair::create("fo", 1);
  ASSERT_TRUE(pair.ok()) << pair.error().message;
  auto config = [&](std::uint16_t id, const char* name) {  // more queue pairs than the device has
    return PortConfig{.port_id = id, .queues = 4, .mtu = 9000, .rx_descriptors = 256, .tx_descriptors = 256,
                      .held_frames_per_queue = 256, .name = name};
  };
  const std::uint16_t a = pair.value().a_port();
  rte_mempool* squatter =
      rte_pktmbuf_pool_create(("pw_ref_" + std::to_string(a)).c_str(), 63, 0, 0, 0, SOCKET_ID_ANY);
  ASSERT_NE(squatter, nullptr);
  auto refused = Port::open(config(a, "foa"));
  rte_mempool_free(squatter);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("cannot create a mempool"), std::string::npos) << refused.error().message;

  auto sender = Port::open(config(a, "foa"));
  ASSERT_TRUE(sender.ok()) << sender.error().message;
  EXPECT_EQ(sender.value().queues(), 1) << "one queue pair, however many were asked for";
  auto receiver = Port::open(config(pair.value().b_port(), "fob"));
  ASSERT_TRUE(receiver.ok()) << receiver.error().message;
  EXPECT_NE(sender.value().reference_pool(), nullptr);
  rte_mbuf* frame = rte_pktmbuf_alloc(sender.value().pool());
  ASSERT_NE(frame, nullptr);
  const std::string bytes = "the same device, opened again";
  std::memcpy(rte_pktmbuf_append(frame, static_cast<std::uint16_t>(bytes.size())), bytes.data(), bytes.size());
  ASSERT_EQ(rte_eth_tx_burst(a, 0, &frame, 1), 1);
  rte_mbuf* received = nullptr;
  ASSERT_EQ(rte_eth_rx_burst(pair.value().b_port(), 0, &received, 1), 1);
  EXPECT_EQ(std::string(rte_pktmbuf_mtod(received, const char*), received->data_len), bytes);
  rte_pktmbuf_free(received);
}

// Both ends on VLAN 100: every frame on the wire carries the tag (ARP included), the MTU
// clamp still finds the IP header behind it, frames of another VLAN are not ours, and the
// pages arrive exactly.
TEST(TransportRing, Vlan100TagsEveryFrameAndIgnoresOtherVlans) {
  Harness harness(2, {.mtu_clamp = 3000});
  std::atomic<std::uint64_t> untagged{0}, tagged{0};
  harness.link().set_tap([&](std::span<const std::byte> frame) {
    const bool is_tagged = frame.size() >= 18 && frame[12] == std::byte{0x81} && frame[13] == std::byte{0x00} &&
                           (std::to_integer<unsigned>(frame[14]) << 8 | std::to_integer<unsigned>(frame[15])) == 100;
    ++(is_tagged ? tagged : untagged);
  });
  Bytes guest = make_guest(1024, 13);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 1024, true);
  auto destination_config = harness.config(2, 1024, false);
  source_config.path.local.vlan = destination_config.path.local.vlan = 100;
  source_config.path.peer.mac = rte_ether_addr{};  // resolved by ARP, on the VLAN
  // The same frame on VLAN 200 is someone else's.
  rte_mbuf* stranger = rte_pktmbuf_alloc(harness.source_port().pool());
  Path other = source_config.path;
  other.peer.mac = harness.destination_port().mac();
  other.local.vlan = 200;
  finish_frame(stranger, other, FrameFields{.type = FrameType::kHello, .stream = 0, .session = 9}, 0);
  EXPECT_EQ(parse_frame(stranger, destination_config.path, 2, 0).drop, FrameDrop::kNotForUs);
  ASSERT_TRUE(harness.link().inject_to_b(stranger));

  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_LE(result.path_mtu, 3000);
  EXPECT_GT(harness.link().counters().clamped.load(), 0u);
  EXPECT_GT(tagged.load(), 0u);
  EXPECT_EQ(untagged.load(), 0u);
  EXPECT_GE(drops(result.destination, FrameDrop::kNotForUs), 1u);
}

// Three HELLOs carrying `hello`, sessions first_session.., as if from the source, queued for
// the destination before it listens. Returns the path they came by, for more of the same.
Path inject_hellos(Harness& harness, const SessionConfig& source_config, const HelloPayload& hello,
                   std::uint32_t first_session) {
  Path from_source = source_config.path;
  from_source.peer.mac = harness.destination_port().mac();
  for (std::uint32_t session = first_session; session < first_session + 3; ++session) {
    rte_mbuf* frame = rte_pktmbuf_alloc(harness.source_port().pool());
    std::memcpy(frame_payload(frame), &hello, sizeof hello);
    finish_frame(frame, from_source, FrameFields{.type = FrameType::kHello, .stream = 0, .session = session},
                 sizeof hello);
    EXPECT_TRUE(harness.link().inject_to_b(frame));
  }
  return from_source;
}

// A keyless destination is not ended by HELLOs that do not fit (a stranger's, or a source
// configured for another page size): each is answered with REFUSE and counted, and the
// real source, arriving after them, migrates.
TEST(TransportRing, HellosThatDoNotFitNeitherEndNorTakeAKeylessDestination) {
  Harness harness(2, {});
  Bytes guest = make_guest(1024, 21);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 1024, true);
  auto destination_config = harness.config(2, 1024, false);
  SessionConfig other_pages = source_config;
  other_pages.page_size = 2 * source_config.page_size;
  const Path from_source = inject_hellos(harness, source_config, make_hello(other_pages, 9000), 70);
  // And a stranger's frames that are no HELLO at all, before any session: counted too.
  for (FrameType type : {FrameType::kData, FrameType::kAbort, FrameType::kCommit}) {
    rte_mbuf* stray = rte_pktmbuf_alloc(harness.source_port().pool());
    finish_frame(stray, from_source, FrameFields{.type = type, .stream = 0, .session = 5}, 0);
    ASSERT_TRUE(harness.link().inject_to_b(stray));
  }
  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_EQ(drops(result.destination, FrameDrop::kRefusedHello), 3u) << "each refused HELLO counted";
  EXPECT_GE(drops(result.destination, FrameDrop::kWrongSession), 3u) << "each stray frame counted";
}

// Without a key, HELLOs that fit in every way (a forger's, or a replay of an earlier
// session's) are answered but take nothing: the session is the one whose source then
// echoes the nonce of its HELLO_ACK in a PROBE. Here the forged HELLOs arrive first, and the
// real source, after them, migrates.
TEST(TransportRing, ForgedHellosThatFitDoNotTakeAKeylessDestination) {
  Harness harness(2, {});
  Bytes guest = make_guest(1024, 23);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 1024, true);
  auto destination_config = harness.config(2, 1024, false);
  const Path from_source = inject_hellos(harness, source_config, make_hello(source_config, 9000), 80);
  // And a PROBE guessing at the nonce of the first.
  rte_mbuf* guess = rte_pktmbuf_alloc(harness.source_port().pool());
  std::memset(frame_payload(guess), 0, 32);
  finish_frame(guess, from_source, FrameFields{.type = FrameType::kProbe, .stream = 0, .session = 80, .seq = 1}, 32);
  ASSERT_TRUE(harness.link().inject_to_b(guess));
  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(drops(result.destination, FrameDrop::kWrongSession), 1u) << "the guessed echo counted";
}

// The frame header of a frame built with finish_frame(), to break; resum_udp() after.
FrameHeader* header_of_built(rte_mbuf* mbuf) {
  return rte_pktmbuf_mtod_offset(mbuf, FrameHeader*, kEthernetBytes + kIpv4Bytes + kUdpBytes);
}
void resum_udp(rte_mbuf* mbuf) {
  auto* ip = rte_pktmbuf_mtod_offset(mbuf, rte_ipv4_hdr*, kEthernetBytes);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->dgram_cksum = 0;
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

// Where an untagged frame's FrameHeader fields sit, for a middlebox that reads them.
constexpr std::size_t kHeaderAt = kEthernetBytes + kIpv4Bytes + kUdpBytes;
constexpr std::size_t kTypeAt = kHeaderAt + 5;
std::uint32_t session_at(std::span<const std::byte> frame) {
  le32 session;
  std::memcpy(&session, frame.data() + kHeaderAt + offsetof(FrameHeader, session), sizeof session);
  return session.get();
}

// A source of an older protocol version: its HELLO is refused in ours, saying both versions
// (and counted as such), and the destination goes on waiting: the real source, after it,
// migrates.
TEST(TransportRing, AHelloOfAnotherVersionIsRefusedSayingBothAndTheWaitGoesOn) {
  std::mutex seen_mutex;
  std::vector<RefusePayload> refusals;  // to the older source's session
  rigs::LinkImpairment watch;
  watch.drop_if = [&](std::span<const std::byte> frame) {
    if (frame.size() >= kHeaderAt + sizeof(FrameHeader) + sizeof(RefusePayload) &&
        frame[kTypeAt] == static_cast<std::byte>(FrameType::kRefuse) && session_at(frame) == 90) {
      RefusePayload refusal;
      std::memcpy(&refusal, frame.data() + kHeaderAt + sizeof(FrameHeader), sizeof refusal);
      std::lock_guard lock(seen_mutex);
      refusals.push_back(refusal);
    }
    return false;
  };
  Harness harness(1, watch);
  Bytes guest = make_guest(64, 24);
  Bytes destination(guest.size());
  auto source_config = harness.config(1, 64, true);
  auto destination_config = harness.config(1, 64, false);
  HelloPayload older = make_hello(source_config, 9000);
  older.version.set(kProtocolVersion - 1);
  Path from_source = source_config.path;
  rte_mbuf* hello = rte_pktmbuf_alloc(harness.source_port().pool());
  std::memcpy(frame_payload(hello), &older, sizeof older);
  finish_frame(hello, from_source, FrameFields{.type = FrameType::kHello, .stream = 0, .session = 90}, sizeof older);
  header_of_built(hello)->version = kProtocolVersion - 1;
  resum_udp(hello);
  ASSERT_TRUE(harness.link().inject_to_b(hello));

  const auto result = migrate(harness, guest, destination, 0, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_EQ(drops(result.destination, FrameDrop::kBadVersion), 1u);
  std::lock_guard lock(seen_mutex);
  ASSERT_FALSE(refusals.empty());
  EXPECT_EQ(refusals[0].reason.get(), static_cast<std::uint16_t>(RefuseReason::kVersion));
  EXPECT_EQ(std::string(refusals[0].message), "protocol version " + std::to_string(kProtocolVersion - 1) +
                                                  " != destination's " + std::to_string(kProtocolVersion));
}

// A destination of a newer protocol version answers in its own: the source reads the prefix
// every version keeps and ends at once, saying both versions, instead of waiting out its
// HELLO timeout. The middlebox stands for that destination: it takes the HELLO and answers.
TEST(TransportRing, AnAnswerInAnotherVersionEndsTheSourceSayingBoth) {
  Harness* rig = nullptr;
  Path to_source;
  rigs::LinkImpairment newer_destination;
  newer_destination.drop_if = [&](std::span<const std::byte> frame) {
    if (frame.size() <= kTypeAt || frame[kTypeAt] != static_cast<std::byte>(FrameType::kHello)) return false;
    RefusePayload refusal{};
    refusal.reason.set(static_cast<std::uint16_t>(RefuseReason::kVersion));
    rte_mbuf* answer = rte_pktmbuf_alloc(rig->destination_port().pool());
    std::memcpy(frame_payload(answer), &refusal, sizeof refusal);
    finish_frame(answer, to_source, FrameFields{.type = FrameType::kRefuse, .stream = 0, .session = session_at(frame)},
                 sizeof refusal);
    header_of_built(answer)->version = kProtocolVersion + 1;
    resum_udp(answer);
    if (!rig->link().inject_to_a(answer)) rte_pktmbuf_free(answer);
    return true;
  };
  Harness harness(1, newer_destination);
  rig = &harness;
  Bytes guest = make_guest(64, 25);
  Bytes destination(guest.size());
  auto source_config = harness.config(1, 64, true);
  auto destination_config = harness.config(1, 64, false);
  destination_config.hello_timeout_ms = 1500;  // it hears nothing
  to_source = destination_config.path;
  const auto started = std::chrono::steady_clock::now();
  const auto result = migrate(harness, guest, destination, 0, source_config, destination_config);
  EXPECT_EQ(result.source_error, "the destination speaks protocol version " + std::to_string(kProtocolVersion + 1) +
                                     ", this source " + std::to_string(kProtocolVersion) +
                                     ": run the same pagewire release at both ends");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 5.0)
      << "the source ended at the answer, not at its 10 s HELLO timeout";
}

// A destination bound to a peer MAC (--peer-mac) takes a HELLO from that MAC only: the
// harness binds every destination to its source's MAC (and those migrate); bound to
// another, it hears the source's HELLOs as not its own and takes no session.
TEST(TransportRing, ADestinationBoundToAnotherMacTakesNoHelloFromTheSource) {
  Harness harness(1, {});
  Bytes guest = make_guest(64, 22);
  Bytes destination(guest.size());
  auto source_config = harness.config(1, 64, true);
  auto destination_config = harness.config(1, 64, false);
  destination_config.path.peer.mac = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x99}};
  source_config.hello_timeout_ms = destination_config.hello_timeout_ms = 1500;
  const auto result = migrate(harness, guest, destination, 0, source_config, destination_config);
  EXPECT_NE(result.source_error.find("no answer to HELLO"), std::string::npos) << result.source_error;
  EXPECT_NE(result.destination_error.find("not addressed to us"), std::string::npos) << result.destination_error;
}

// A route change mid-transfer: after the first round the path silently drops packets above
// 1500 bytes (no ICMP, as a tunnel that loses DF packets). Each stream notices its frames
// vanish while small probes pass, searches for the new MTU, and sends what it holds in
// parts the destination rebuilds; frames built afterwards fit. With the path restored, the
// streams find the larger MTU again. Clear frames carry their pages by reference (chains
// are cut from guest memory); sealed ones must be unsealed first.
// (On this shared VM, silent timers without a black hole happen too: those end in a
// confirming probe at the full size, which passes.)
class BlackHole : public ::testing::TestWithParam<bool> {};

TEST_P(BlackHole, AMidTransferMtuDropIsFoundAndCrossedInParts) {
  const bool sealed = GetParam();
  Harness harness(2, {});
  Bytes guest = make_guest(2048, 14);
  Bytes destination(guest.size());
  auto source_config = harness.config(2, 2048, true);
  auto destination_config = harness.config(2, 2048, false);
  // Longer than the black-hole search takes here, so the first look for a larger MTU comes
  // after the clamp is lifted.
  source_config.tuning.mtu_raise_interval_ms = 1000;
  source_config.policy.deflate = sealed;  // clear: RAW pages, encoded straight into frames
  if (sealed) {
    std::array<std::uint8_t, 32> secret;
    secret.fill(7);
    for (auto* c : {&source_config, &destination_config}) {
      c->security.key = std::move(PreSharedKey::from_bytes(secret, "test")).value();
      c->security.encrypt = true;
    }
  }
  int round = 0;
  auto route_change = [&](DestinationSession&) {
    ++round;
    if (round == 1) harness.link().set_mtu_clamp(1500);
    if (round == 3) harness.link().set_mtu_clamp(0);
    // Past the raise interval, twice: on a loaded machine a look for a larger MTU can lose
    // its probes to descheduling and settle short of 9000; the next look, an interval later,
    // finds it (one CI run ended at 8941 with a single look).
    if (round == 3 || round == 4) std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  };
  const auto result = migrate(harness, guest, destination, 6, source_config, destination_config, route_change,
                              sealed ? SourceSession::RoundPages::kMayChange : SourceSession::RoundPages::kStable);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_EQ(result.path_mtu, 9000);
  if (!sealed) {
    EXPECT_GT(result.source.streams.pages_by_reference, 0u);
  }
  EXPECT_GE(result.source.streams.black_holes, 1u);
  EXPECT_GT(result.source.streams.fragments_sent, 0u);
  EXPECT_GT(result.destination.streams.fragments_received, 0u);
  EXPECT_GT(harness.link().counters().clamped.load(), 0u);
  EXPECT_EQ(result.source.streams.path_mtu, 9000u) << "the larger MTU was found again";
}

INSTANTIATE_TEST_SUITE_P(ClearAndSealed, BlackHole, ::testing::Bool());

// Every mbuf of both ports' pools is taken between two rounds and given back 300 ms later:
// the ends count the failed allocations, wait, and the migration completes exactly.
TEST(TransportRing, AnExhaustedMempoolIsWaitedOut) {
  Harness harness(1, {});
  Bytes guest = make_guest(1024, 8);
  Bytes destination(guest.size());
  std::thread releaser;
  auto exhaust_the_pools_once = [&](DestinationSession&) {
    if (releaser.joinable()) return;
    // Taken here, before the next round starts: the source's own core then finds them empty.
    auto taken = std::make_shared<std::vector<rte_mbuf*>>();
    for (rte_mempool* pool : {harness.source_port().pool(), harness.destination_port().pool()}) {
      while (rte_mbuf* mbuf = rte_pktmbuf_alloc(pool)) taken->push_back(mbuf);
    }
    releaser = std::thread([taken] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      for (rte_mbuf* mbuf : *taken) rte_pktmbuf_free(mbuf);
    });
  };
  const auto result = migrate(harness, guest, destination, 2, harness.config(1, 1024, true),
                              harness.config(1, 1024, false), exhaust_the_pools_once);
  releaser.join();
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(result.source.streams.mbuf_exhausted + result.destination.streams.mbuf_exhausted, 1u);
}

// The cable is pulled and the source's port reports its link down: both ends give up after
// their peer timeout, each saying what it saw, instead of hanging.
TEST(TransportRing, APulledCableEndsBothSidesWithAClearErrorInBoundedTime) {
  Harness harness(1, {});
  Bytes guest = make_guest(512, 9);
  Bytes destination(guest.size());
  auto source_config = harness.config(1, 512, true);
  auto destination_config = harness.config(1, 512, false);
  source_config.peer_timeout_ms = destination_config.peer_timeout_ms = 1000;
  const auto start = std::chrono::steady_clock::now();
  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config,
                              [&](DestinationSession&) {
                                harness.link().set_cut(true);
                                rte_eth_dev_set_link_down(harness.source_port().id());
                              });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  rte_eth_dev_set_link_up(harness.source_port().id());
  EXPECT_NE(result.source_error.find("acknowledged nothing for 1000 ms"), std::string::npos) << result.source_error;
  EXPECT_NE(result.source_error.find("this port's link is down"), std::string::npos) << result.source_error;
  EXPECT_NE(result.destination_error.find("the source sent nothing for 1000 ms"), std::string::npos)
      << result.destination_error;
  EXPECT_LT(seconds, 10.0);
  EXPECT_GE(harness.link().counters().cut.load(), 1u);
}

// Between rounds a source may be busy for longer than the peer timeout (rehashing a large
// guest, syncing its dirty log). With keepalives the destination waits; without, it gives
// up, which shows the keepalives are what kept it.
MigrationResult migrate_with_a_pause(bool keep_alive, Bytes& guest, Bytes& destination) {
  Harness harness(1, {});
  auto source_config = harness.config(1, 512, true);
  auto destination_config = harness.config(1, 512, false);
  source_config.peer_timeout_ms = destination_config.peer_timeout_ms = 300;
  return migrate(harness, guest, destination, 2, source_config, destination_config, {},
                 SourceSession::RoundPages::kMayChange, [&](SourceSession& source) {
                   const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
                   if (keep_alive) {
                     source.keep_alive_while([&] { return std::chrono::steady_clock::now() < until; });
                   } else {
                     std::this_thread::sleep_until(until);
                   }
                 });
}

TEST(TransportRing, ASourceBusyBetweenRoundsKeepsTheDestinationWithKeepalives) {
  Bytes guest = make_guest(512, 12);
  Bytes destination(guest.size());
  const auto result = migrate_with_a_pause(true, guest, destination);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(result.destination.streams.probes_received, 2 * 1000 / 300u) << "two pauses of 1 s, a keepalive per 75 ms";
}

TEST(TransportRing, ASourceSilentBetweenRoundsForLongerThanThePeerTimeoutIsGivenUp) {
  Bytes guest = make_guest(512, 12);
  Bytes destination(guest.size());
  const auto result = migrate_with_a_pause(false, guest, destination);
  EXPECT_NE(result.destination_error.find("the source sent nothing for 300 ms"), std::string::npos)
      << result.destination_error;
  EXPECT_NE(result.source_error, "") << "the next round finds no destination";
}

// A cable out for 300 ms mid-round: the retransmission timer brings the stream back.
TEST(TransportRing, ACableOutForAMomentIsRecoveredFrom) {
  Harness harness(2, {});
  Bytes guest = make_guest(2048, 10);
  Bytes destination(guest.size());
  std::thread outage;
  auto pull_the_cable_once = [&](DestinationSession&) {
    if (outage.joinable()) return;  // after the first round only, while the next one runs
    outage = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      harness.link().set_cut(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      harness.link().set_cut(false);
    });
  };
  const auto result = migrate(harness, guest, destination, 2, harness.config(2, 2048, true),
                              harness.config(2, 2048, false), pull_the_cable_once);
  outage.join();
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(harness.link().counters().cut.load(), 1u);
}

// Hand-made hostile frames on the destination's queue: each is counted and dropped, and a
// migration over the same ports still arrives exactly.
TEST(TransportRing, HostileFramesAreCountedAndDropped) {
  Harness harness(1, {});
  Bytes guest = make_guest(256, 5);
  Bytes destination(guest.size());
  const auto source_config = harness.config(1, 256, true);
  const auto destination_config = harness.config(1, 256, false);

  // The destination parses whatever reaches it; build frames as the source would, then break them.
  rte_mempool* pool = harness.source_port().pool();
  auto frame = [&](std::uint16_t payload, auto&& breaker) {
    rte_mbuf* mbuf = rte_pktmbuf_alloc(pool);
    std::memset(frame_payload(mbuf), 0x41, payload);
    finish_frame(mbuf, source_config.path, FrameFields{.type = FrameType::kData, .stream = 0, .session = 1, .seq = 0},
                 payload);
    breaker(mbuf);
    return mbuf;
  };
  const Path& path = destination_config.path;
  struct Case {
    const char* what;
    FrameDrop expected;
    std::function<void(rte_mbuf*)> breaker;
  };
  const Case cases[] = {
      {"short frame", FrameDrop::kTruncated, [](rte_mbuf* m) { m->data_len = m->pkt_len = 20; }},
      {"bad UDP checksum", FrameDrop::kBadChecksum, [](rte_mbuf* m) { rte_pktmbuf_mtod(m, std::uint8_t*)[80] ^= 1; }},
      {"wrong EtherType", FrameDrop::kNotIpv4, [](rte_mbuf* m) { rte_pktmbuf_mtod(m, std::uint8_t*)[12] = 0x86; }},
      {"IP length past the frame", FrameDrop::kBadIpHeader, [](rte_mbuf* m) { m->data_len = m->pkt_len = 60; }},
  };
  for (const Case& c : cases) {
    rte_mbuf* mbuf = frame(100, c.breaker);
    const ReceivedFrame parsed = parse_frame(mbuf, path, 1, 0);
    EXPECT_EQ(parsed.drop, c.expected) << c.what << ": " << to_string(parsed.drop);
    ASSERT_TRUE(harness.link().inject_to_b(mbuf));
  }
  // Valid headers but the wrong protocol version and a payload length past the datagram:
  // fix the checksums after breaking, so the check that must catch them is the one tested.
  // And reserved header bytes set, which this version does not know.
  const FrameDrop expected[] = {FrameDrop::kBadVersion, FrameDrop::kTruncated, FrameDrop::kUnknownType};
  for (int kind = 0; kind < 3; ++kind) {
    rte_mbuf* mbuf = frame(100, [&](rte_mbuf* m) {
      FrameHeader* header = header_of_built(m);
      if (kind == 0) header->version = 9;
      if (kind == 1) header->payload_bytes.set(4000);
      if (kind == 2) header->reserved.set(1);
      resum_udp(m);
    });
    EXPECT_EQ(parse_frame(mbuf, path, 1, 0).drop, expected[kind]);
    ASSERT_TRUE(harness.link().inject_to_b(mbuf));
  }

  // A frame without a UDP checksum (field 0) is refused where one is required, accepted on
  // a path configured without them.
  {
    Path unchecked = source_config.path;
    unchecked.udp_checksum = false;
    rte_mbuf* mbuf = rte_pktmbuf_alloc(pool);
    finish_frame(mbuf, unchecked, FrameFields{.type = FrameType::kData, .stream = 0, .session = 1, .seq = 0}, 64);
    EXPECT_EQ(parse_frame(mbuf, path, 1, 0).drop, FrameDrop::kBadChecksum);
    Path lenient = path;
    lenient.udp_checksum = false;
    EXPECT_EQ(parse_frame(mbuf, lenient, 1, 0).drop, FrameDrop::kNone);
    rte_pktmbuf_free(mbuf);
  }

  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  for (FrameDrop why : {FrameDrop::kTruncated, FrameDrop::kBadChecksum, FrameDrop::kNotIpv4,
                        FrameDrop::kBadIpHeader, FrameDrop::kBadVersion, FrameDrop::kUnknownType}) {
    EXPECT_GE(drops(result.destination, why), 1u) << "counted: " << to_string(why);
  }
}

// Frames that come when nothing waits for them, or of a type only the receiving end sends,
// are dropped and each counted by name (issue 20: every frame counted): an answer after
// its exchange, a FIN_ACK for an earlier FIN, a COMMIT before anything was verified, a
// source's DATA reaching the source, a destination's ACK reaching the destination.
TEST(TransportRing, FramesOutOfTurnOrOfTheWrongDirectionAreCountedByName) {
  struct Stray {
    rte_mbuf* frame;
    bool to_source;
  };
  std::vector<Stray> strays;
  std::atomic<bool> armed{false};
  Harness* rig = nullptr;
  rigs::LinkImpairment impairment;
  // The receive rings have one producer, the forwarder: the strays go from its thread.
  impairment.drop_if = [&](std::span<const std::byte>) {
    if (!armed.exchange(false)) return false;
    for (const Stray& stray : strays) {
      const bool queued = stray.to_source ? rig->link().inject_to_a(stray.frame) : rig->link().inject_to_b(stray.frame);
      if (!queued) rte_pktmbuf_free(stray.frame);
    }
    return false;
  };
  Harness harness(1, impairment);
  rig = &harness;
  Bytes guest = make_guest(256, 9);
  Bytes destination(guest.size());
  const auto source_config = harness.config(1, 256, true);
  const auto destination_config = harness.config(1, 256, false);
  auto stray = [&](const SessionConfig& from, FrameType type, std::uint32_t session, std::uint32_t seq) {
    rte_mbuf* mbuf = rte_pktmbuf_alloc(harness.source_port().pool());
    std::memset(frame_payload(mbuf), 0, 64);
    finish_frame(mbuf, from.path, FrameFields{.type = type, .stream = 0, .session = session, .seq = seq}, 64);
    strays.push_back({mbuf, &from == &destination_config});
  };
  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config, {},
                              SourceSession::RoundPages::kMayChange, [&](SourceSession& source) {
                                const std::uint32_t session = source.session_id();
                                stray(destination_config, FrameType::kVerifyReply, session, 777);
                                stray(destination_config, FrameType::kFinAck, session, 12345);
                                stray(destination_config, FrameType::kData, session, 0);
                                stray(source_config, FrameType::kAck, session, 0);
                                stray(source_config, FrameType::kCommit, session, 5);
                                armed.store(true);
                              });
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_FALSE(armed.load()) << "the strays went";
  EXPECT_GE(drops(result.source, FrameDrop::kOutOfTurn), 2u) << "VERIFY_REPLY after no VERIFY, FIN_ACK for no FIN";
  EXPECT_GE(drops(result.source, FrameDrop::kWrongDirection), 1u) << "DATA at the source";
  EXPECT_GE(drops(result.destination, FrameDrop::kOutOfTurn), 1u) << "COMMIT before VERIFY";
  EXPECT_GE(drops(result.destination, FrameDrop::kWrongDirection), 1u) << "ACK at the destination";
}

}  // namespace
}  // namespace pagewire::transport

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pagewire::transport::test_ring::EalEnvironment("test_transport_ring"));
  return RUN_ALL_TESTS();
}



