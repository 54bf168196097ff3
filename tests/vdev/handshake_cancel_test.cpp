// Giving up before a session exists (SessionConfig::cancel: SIGINT in the CLI, Link::cancel
// for an embedder): each wait of the handshake ends within moments, and a peer that already
// answered is told (ABORT), so it ends within a second instead of waiting out its timeout.
// Keyless and keyed, from either end, over the in-process rig (ring_harness.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <ostream>
#include <span>
#include <string_view>
#include <cstring>
#include <thread>

#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/pre_shared_key.hpp"
#include "ring_harness.hpp"

namespace pagewire::transport {
namespace {

using test::Bytes;
using namespace test_ring;
using Clock = std::chrono::steady_clock;

// The type byte of an untagged IPv4/UDP frame: after the Ethernet, IP and UDP headers and
// FrameHeader's magic and version (in clear on sealed frames too: it is additional data).
constexpr std::size_t kTypeOffset = 14 + 20 + 8 + 5;

PreSharedKey test_key() {
  std::array<std::uint8_t, 32> bytes;
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(7 * i + 3);
  return std::move(PreSharedKey::from_bytes(bytes, "test key")).value();
}

// How one end's connect() or accept() ended, and when.
struct Ending {
  std::optional<ErrorCode> code;  // none: it succeeded
  std::string message;
  Clock::time_point at;
};

template <typename Session>
Ending ending_of(const Result<std::unique_ptr<Session>>& result) {
  return result ? Ending{std::nullopt, "", Clock::now()}
                : Ending{result.error().code, result.error().message, Clock::now()};
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

struct HandshakeCancel {
  const char* cancelled_end;  // "source" or "destination"
  bool keyed;
};

void PrintTo(const HandshakeCancel& param, std::ostream* out) {
  *out << param.cancelled_end << (param.keyed ? ", keyed" : ", keyless");
}

class CancelledMidHandshake : public ::testing::TestWithParam<HandshakeCancel> {};

// The path loses every PROBE: HELLO and HELLO_ACK pass, so the destination knows the source
// (pending) and the source searches the path MTU, both for seconds. One end is cancelled
// then; both end at once, the other with the reason.
TEST_P(CancelledMidHandshake, BothEndsEndWithinASecondAndTheOtherSaysWhy) {
  const HandshakeCancel param = GetParam();
  std::atomic<int> probes_lost{0};
  rigs::LinkImpairment no_probes;
  no_probes.drop_if = [&](std::span<const std::byte> frame) {
    const bool probe = frame.size() > kTypeOffset && frame[kTypeOffset] == static_cast<std::byte>(FrameType::kProbe);
    probes_lost += probe;
    return probe;
  };
  Harness harness(1, no_probes);
  Bytes guest = make_guest(64, 31);
  Bytes destination(guest.size());
  StopReason source_cancel, destination_cancel;
  SessionConfig source_config = harness.config(1, 64, true);
  SessionConfig destination_config = harness.config(1, 64, false);
  source_config.cancel = &source_cancel;
  destination_config.cancel = &destination_cancel;
  if (param.keyed) source_config.security.key = destination_config.security.key = test_key();

  Ending source_end, destination_end;
  std::thread destination_thread([&] {
    destination_end = ending_of(DestinationSession::accept(destination_config, harness.destination_port(),
                                                           pages_of(destination, destination_config)));
  });
  std::thread source_thread([&] {
    source_end = ending_of(SourceSession::connect(source_config, harness.source_port(), pages_of(guest, source_config)));
  });
  while (probes_lost.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool source_cancelled = std::string_view(param.cancelled_end) == "source";
  const auto cancelled_at = Clock::now();
  (source_cancelled ? source_cancel : destination_cancel).set("test");
  source_thread.join();
  destination_thread.join();

  const Ending& cancelled = source_cancelled ? source_end : destination_end;
  const Ending& told = source_cancelled ? destination_end : source_end;
  EXPECT_EQ(cancelled.code, ErrorCode::kCancelled) << cancelled.message;
  EXPECT_EQ(cancelled.message, "cancelled: test");
  EXPECT_EQ(told.code, ErrorCode::kAborted) << told.message;
  EXPECT_EQ(told.message, source_cancelled ? "the source aborted the handshake: cancelled: test"
                                           : "the destination aborted: the destination was cancelled: test");
  // Without the ABORT the destination would wait 10 s for its HELLO timeout, the source
  // 5 s for its peer timeout.
  EXPECT_LT(seconds_between(cancelled_at, cancelled.at), 1.0);
  EXPECT_LT(seconds_between(cancelled_at, told.at), 1.0);
}

INSTANTIATE_TEST_SUITE_P(EitherEnd, CancelledMidHandshake,
                         ::testing::Values(HandshakeCancel{"source", false}, HandshakeCancel{"destination", false},
                                           HandshakeCancel{"source", true}, HandshakeCancel{"destination", true}),
                         [](const auto& info) {
                           return std::string(info.param.cancelled_end) + (info.param.keyed ? "Keyed" : "Keyless");
                         });

// Alone, before anyone answered: a destination waiting for its first HELLO, and a source
// asking ARP for a peer that is not there, each end within a moment of the cancel.
TEST(HandshakeCancel, WaitsWithNoPeerYetEndAtOnce) {
  Harness harness(1, {});
  Bytes memory = make_guest(64, 32);
  for (const bool source_end : {false, true}) {
    StopReason cancel;
    SessionConfig config = harness.config(1, 64, source_end);
    config.cancel = &cancel;
    config.path.peer.mac = {};  // the source asks ARP; nobody answers
    std::optional<Ending> ended;
    std::thread waiting([&] {
      ended = source_end ? ending_of(SourceSession::connect(config, harness.source_port(), pages_of(memory, config)))
                         : ending_of(DestinationSession::accept(config, harness.destination_port(), pages_of(memory, config)));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto cancelled_at = Clock::now();
    cancel.set("test");
    waiting.join();
    ASSERT_TRUE(ended.has_value());
    EXPECT_EQ(ended->code, ErrorCode::kCancelled) << (source_end ? "source: " : "destination: ") << ended->message;
    EXPECT_EQ(ended->message, "cancelled: test");
    EXPECT_LT(seconds_between(cancelled_at, ended->at), 0.5);
  }
}

// A keyless ABORT of a pending handshake must echo the HELLO_ACK's nonce: a stranger who
// knows only the session id (it is in every frame) cannot end the destination's wait, and
// the real source then migrates.
TEST(HandshakeCancel, AnAbortThatDoesNotEchoTheNonceEndsNothing) {
  // The stranger's ABORT goes just ahead of the real source's first PROBE, when the
  // destination has answered that source's HELLO and holds its session id as pending. It is
  // put on the destination's queue from the middlebox's own thread, the queue's one producer.
  Harness* rig = nullptr;
  Path from_source;
  std::atomic<bool> injected{false};
  rigs::LinkImpairment path;
  path.drop_if = [&](std::span<const std::byte> frame) {
    if (frame.size() <= kTypeOffset || frame[kTypeOffset] != static_cast<std::byte>(FrameType::kProbe)) return false;
    if (injected.exchange(true)) return false;
    FrameHeader header;
    std::memcpy(&header, frame.data() + 14 + 20 + 8, sizeof header);
    rte_mbuf* forged = rte_pktmbuf_alloc(rig->source_port().pool());
    const std::string_view reason = "a stranger's abort";
    std::memset(frame_payload(forged), 0, 32);  // a guessed nonce
    std::memcpy(frame_payload(forged) + 32, reason.data(), reason.size());
    finish_frame(forged, from_source, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = header.session.get()},
                 static_cast<std::uint16_t>(32 + reason.size()));
    if (!rig->link().inject_to_b(forged)) rte_pktmbuf_free(forged);
    return false;  // the PROBE itself passes, after it
  };
  Harness harness(1, path);
  rig = &harness;
  Bytes guest = make_guest(64, 33);
  Bytes destination(guest.size());
  SessionConfig source_config = harness.config(1, 64, true);
  SessionConfig destination_config = harness.config(1, 64, false);
  from_source = source_config.path;
  const auto result = migrate(harness, guest, destination, 0, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(injected.load());
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(drops(result.destination, FrameDrop::kWrongSession), 1u) << "the forged ABORT counted";
}

}  // namespace
}  // namespace pagewire::transport

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pagewire::transport::test_ring::EalEnvironment("test_handshake_cancel"));
  return RUN_ALL_TESTS();
}
