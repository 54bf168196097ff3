// Authenticated and encrypted sessions over the in-process rig (ring_harness.hpp): the
// pre-shared key handshake, sealed frames, and what a stranger, a forger or a replaying
// middlebox achieves (nothing but counters). Every migration checks destination memory
// byte for byte.
#include <gtest/gtest.h>
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string_view>
#include <thread>

#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/frame_crypto.hpp"
#include "pagewire/transport/handshake.hpp"
#include "ring_harness.hpp"

namespace pagewire::transport {
namespace {

using test::Bytes;
using namespace test_ring;

PreSharedKey key_of(std::uint8_t seed) {
  std::array<std::uint8_t, 32> bytes;
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(seed * 31 + i);
  return std::move(PreSharedKey::from_bytes(bytes, "test key")).value();
}

SessionConfig secured(SessionConfig config, std::optional<PreSharedKey> key, bool encrypt) {
  config.security.key = std::move(key);
  config.security.encrypt = encrypt;
  return config;
}

constexpr std::string_view kMarker = "guest-secret:4f1c9b7e-only-the-destination-may-read-this";

// A guest whose pages carry a recognisable text an eavesdropper could look for.
Bytes marked_guest(std::uint64_t pages) {
  Bytes guest = make_guest(pages, 11);
  for (std::uint64_t p = 3; p < pages; p += 5) std::memcpy(guest.data() + p * kPage + 100, kMarker.data(), kMarker.size());
  return guest;
}

// How many frames on the wire carry the marker in clear.
std::uint64_t migrate_and_count_marker(bool encrypt, SessionTotals* destination_totals) {
  Harness harness(2, {});
  std::atomic<std::uint64_t> readable{0};
  harness.link().set_tap([&](std::span<const std::byte> frame) {
    const auto* begin = reinterpret_cast<const char*>(frame.data());
    if (std::search(begin, begin + frame.size(), kMarker.begin(), kMarker.end()) != begin + frame.size()) ++readable;
  });
  Bytes guest = marked_guest(1024);
  Bytes destination(guest.size());
  const auto result = migrate(harness, guest, destination, 2, secured(harness.config(2, 1024, true), key_of(1), encrypt),
                              secured(harness.config(2, 1024, false), key_of(1), encrypt));
  EXPECT_EQ(result.source_error, "");
  EXPECT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  *destination_totals = result.destination;
  return readable.load();
}

TEST(SecureSession, EncryptedMigrationArrivesExactlyAndNoPageIsReadableOnTheWire) {
  SessionTotals totals;
  EXPECT_EQ(migrate_and_count_marker(true, &totals), 0u);
  EXPECT_EQ(drops(totals, FrameDrop::kBadTag), 0u);
  EXPECT_GT(totals.streams.frames_received, 0u);
}

TEST(SecureSession, AuthenticatedMigrationArrivesExactlyWithPagesInClear) {
  // The same tap sees the marker when frames are only authenticated: the check above is real.
  SessionTotals totals;
  EXPECT_GT(migrate_and_count_marker(false, &totals), 0u);
  EXPECT_EQ(drops(totals, FrameDrop::kBadTag), 0u);
}

// Both ends are told, each in its own words, when the keys differ.
TEST(SecureSession, AWrongKeyIsRefusedOnBothSides) {
  Harness harness(1, {});
  Bytes guest = make_guest(64, 2);
  Bytes destination(guest.size());
  auto source_config = secured(harness.config(1, 64, true), key_of(1), false);
  auto destination_config = secured(harness.config(1, 64, false), key_of(2), false);
  source_config.hello_timeout_ms = destination_config.hello_timeout_ms = 1500;
  const auto result = migrate(harness, guest, destination, 0, source_config, destination_config);
  EXPECT_NE(result.source_error.find("pre-shared key differs"), std::string::npos) << result.source_error;
  EXPECT_NE(result.destination_error.find("pre-shared key differs"), std::string::npos) << result.destination_error;
}

TEST(SecureSession, OneSidedKeysAndAnUnencryptedSourceAreRefusedWithWhatDiffers) {
  struct Case {
    std::optional<PreSharedKey> source_key;
    bool source_encrypts;
    std::optional<PreSharedKey> destination_key;
    bool destination_requires_encryption;
    const char* expected;
  };
  const Case cases[] = {
      {key_of(1), false, std::nullopt, false, "this destination has none"},
      {std::nullopt, false, key_of(1), false, "requires authentication"},
      {key_of(1), false, key_of(1), true, "requires an encrypted stream"},
  };
  for (const Case& c : cases) {
    Harness harness(1, {});
    Bytes guest = make_guest(64, 3);
    Bytes destination(guest.size());
    auto source_config = secured(harness.config(1, 64, true), c.source_key, c.source_encrypts);
    auto destination_config = secured(harness.config(1, 64, false), c.destination_key, c.destination_requires_encryption);
    source_config.hello_timeout_ms = destination_config.hello_timeout_ms = 1500;
    const auto result = migrate(harness, guest, destination, 0, source_config, destination_config);
    EXPECT_NE(result.source_error.find(c.expected), std::string::npos) << c.expected << ": " << result.source_error;
    EXPECT_NE(result.destination_error.find(c.expected), std::string::npos)
        << c.expected << ": " << result.destination_error;
  }
}

// A stranger's HELLO (another key) reaches the destination first: it is refused and counted,
// and the source that holds the key still migrates.
TEST(SecureSession, AStrangersHelloNeitherTakesNorEndsTheWait) {
  Harness harness(1, {});
  Bytes guest = make_guest(256, 4);
  Bytes destination(guest.size());
  const auto source_config = secured(harness.config(1, 256, true), key_of(1), true);
  const auto destination_config = secured(harness.config(1, 256, false), key_of(1), true);

  SessionConfig stranger = source_config;
  stranger.security.key = key_of(9);
  const HelloPayload hello = make_hello(stranger, 9000);
  const HelloAuth auth = make_source_auth(*stranger.security.key, 0x5eed, hello, random_nonce());
  rte_mbuf* mbuf = rte_pktmbuf_alloc(harness.source_port().pool());
  std::memcpy(frame_payload(mbuf), &hello, sizeof hello);
  std::memcpy(frame_payload(mbuf) + sizeof hello, &auth, sizeof auth);
  finish_frame(mbuf, stranger.path, FrameFields{.type = FrameType::kHello, .stream = 0, .session = 0x5eed},
               sizeof hello + sizeof auth);
  ASSERT_TRUE(harness.link().inject_to_b(mbuf));

  const auto result = migrate(harness, guest, destination, 1, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(drops(result.destination, FrameDrop::kBadTag), 1u);
}

// On a memory link without UDP checksums, corrupted frames reach the seal and fail it;
// duplicated ACKs and control frames are replays. Nothing wrong is applied.
TEST(SecureSession, CorruptedAndReplayedFramesAreDroppedAndCounted) {
  rigs::LinkImpairment impairment;
  impairment.corrupt = 0.02;
  impairment.duplicate = 0.25;  // often enough that some of the few ACKs come twice
  Harness harness(1, impairment);
  Bytes guest = make_guest(2048, 5);
  Bytes destination(guest.size());
  auto source_config = secured(harness.config(1, 2048, true), key_of(3), true);
  auto destination_config = secured(harness.config(1, 2048, false), key_of(3), true);
  source_config.udp_checksum = destination_config.udp_checksum = UdpChecksum::kOff;
  const auto result = migrate(harness, guest, destination, 2, source_config, destination_config);
  ASSERT_EQ(result.source_error, "");
  ASSERT_EQ(result.destination_error, "");
  EXPECT_TRUE(guest == destination);
  EXPECT_GE(drops(result.destination, FrameDrop::kBadTag) + drops(result.source, FrameDrop::kBadTag), 1u);
  EXPECT_GE(drops(result.destination, FrameDrop::kReplayed) + drops(result.source, FrameDrop::kReplayed), 1u);
  EXPECT_GE(result.destination.streams.duplicates, 1u);  // duplicated DATA: found by sequence
  // Frames after a hole a forgery left: opened, then applied as they came (their record
  // flags are in the authenticated header).
  EXPECT_GT(result.destination.streams.applied_ahead, 0u);
}

// open_frame() on hand-made frames: each forgery is dropped with its own reason, and a
// frame the sender still holds is decrypted into a private copy, never in place.
TEST(SecureSession, OpenFrameDropsForgeriesAndNeverWritesASharedBuffer) {
  Harness harness(1, {});
  const SessionConfig source = harness.config(1, 64, true);
  const SessionConfig receiver = harness.config(1, 64, false);
  const SessionKeys keys = derive_session_keys(key_of(1), 77, random_nonce(), random_nonce(), true);
  auto sealer = std::move(FrameCrypto::create(keys, FrameCrypto::Side::kSource)).value();
  auto opener = std::move(FrameCrypto::create(keys, FrameCrypto::Side::kDestination)).value();
  rte_mempool* pool = harness.source_port().pool();
  std::array<std::byte, 200> text;
  for (std::size_t i = 0; i < text.size(); ++i) text[i] = static_cast<std::byte>(i);

  auto build = [&](FrameType type, std::uint32_t seq, FrameCrypto* crypto) {
    rte_mbuf* mbuf = rte_pktmbuf_alloc(pool);
    std::memcpy(frame_payload(mbuf), text.data(), text.size());
    finish_frame(mbuf, source.path, FrameFields{.type = type, .stream = 0, .session = 77, .seq = seq},
                 static_cast<std::uint16_t>(text.size()), 0, crypto);
    return mbuf;
  };
  // Returns the drop reason; on success checks the plaintext.
  auto receive = [&](rte_mbuf* mbuf) {
    ReceivedFrame frame = parse_frame(mbuf, receiver.path, 1, 77);
    EXPECT_EQ(frame.drop, FrameDrop::kNone);
    const FrameDrop drop = open_frame(&mbuf, &frame, &opener, pool);
    if (drop == FrameDrop::kNone) {
      EXPECT_EQ(std::memcmp(frame.payload, text.data(), text.size()), 0);
    }
    rte_pktmbuf_free(mbuf);
    return drop;
  };

  // Sealed DATA opens, and its payload was not on the wire in clear.
  rte_mbuf* data = build(FrameType::kData, 0, &sealer);
  EXPECT_NE(std::memcmp(frame_payload(data), text.data(), text.size()), 0);
  // The sender keeps a reference for retransmission: the receiver must decrypt elsewhere.
  rte_mbuf_refcnt_update(data, 1);
  std::array<std::byte, 200> on_wire;
  std::memcpy(on_wire.data(), frame_payload(data), on_wire.size());
  EXPECT_EQ(receive(data), FrameDrop::kNone);
  EXPECT_EQ(std::memcmp(frame_payload(data), on_wire.data(), on_wire.size()), 0) << "the sender's copy was written";
  // Its retransmission (the same bytes, the same counter) is let through to the stream's
  // sequence check.
  EXPECT_EQ(receive(data), FrameDrop::kNone);

  // An ACK (sent once) repeated is a replay.
  rte_mbuf* ack = build(FrameType::kAck, 0, &sealer);
  rte_mbuf_refcnt_update(ack, 1);
  EXPECT_EQ(receive(ack), FrameDrop::kNone);
  EXPECT_EQ(receive(ack), FrameDrop::kReplayed);

  // Unsealed where the session has a key: refused, except the handshake's own frames.
  EXPECT_EQ(receive(build(FrameType::kData, 1, nullptr)), FrameDrop::kSealMismatch);
  EXPECT_EQ(receive(build(FrameType::kHello, 0, nullptr)), FrameDrop::kNone);

  // A flipped bit in the payload, the header (the sequence), or the tag, with the UDP
  // checksum made right again, as a forger would: the seal is what must catch it.
  for (std::size_t offset : {kEthernetBytes + kIpOverhead + 10, kEthernetBytes + kIpv4Bytes + kUdpBytes + 12,
                             kEthernetBytes + kIpOverhead + text.size() + 8 + 3}) {
    rte_mbuf* forged = build(FrameType::kData, 2, &sealer);
    rte_pktmbuf_mtod(forged, std::uint8_t*)[offset] ^= 0x10;
    auto* ip = rte_pktmbuf_mtod_offset(forged, rte_ipv4_hdr*, kEthernetBytes);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
    EXPECT_EQ(receive(forged), FrameDrop::kBadTag) << "offset " << offset;
  }
  // Sealed with another session's keys.
  const SessionKeys other = derive_session_keys(key_of(1), 78, random_nonce(), random_nonce(), true);
  auto stranger = std::move(FrameCrypto::create(other, FrameCrypto::Side::kSource)).value();
  EXPECT_EQ(receive(build(FrameType::kData, 3, &stranger)), FrameDrop::kBadTag);
}

}  // namespace
}  // namespace pagewire::transport

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pagewire::transport::test_ring::EalEnvironment("test_secure_session"));
  return RUN_ALL_TESTS();
}
