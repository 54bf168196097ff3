// The sealing primitives without a port: HKDF against RFC 5869's vector, session keys that
// differ per session, direction and nonce, GCM seal/open with tampering of every part, the
// replay window's rules, and pre-shared keys from files and hex.
#include "pagewire/transport/frame_crypto.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace pagewire::transport {
namespace {

std::vector<std::uint8_t> from_hex(const std::string& hex) {
  std::vector<std::uint8_t> bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

PreSharedKey key_of(std::uint8_t fill) {
  std::array<std::uint8_t, 32> bytes;
  bytes.fill(fill);
  return std::move(PreSharedKey::from_bytes(bytes, "test")).value();
}

TEST(FrameCrypto, HkdfMatchesRfc5869TestCase1) {
  const std::vector<std::uint8_t> ikm(22, 0x0b);
  const auto salt = from_hex("000102030405060708090a0b0c");
  const auto info = from_hex("f0f1f2f3f4f5f6f7f8f9");
  std::vector<std::uint8_t> okm(42);
  hkdf_sha256(ikm, salt, info, okm);
  EXPECT_EQ(okm, from_hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"));
}

TEST(FrameCrypto, SessionKeysDifferPerDirectionSessionNonceAndEncryption) {
  const Nonce a = random_nonce(), b = random_nonce();
  const SessionKeys keys = derive_session_keys(key_of(1), 1, a, b, true);
  EXPECT_NE(keys.source_to_destination, keys.destination_to_source);
  EXPECT_EQ(derive_session_keys(key_of(1), 1, a, b, true).source_to_destination, keys.source_to_destination);
  EXPECT_NE(derive_session_keys(key_of(1), 2, a, b, true).source_to_destination, keys.source_to_destination);
  EXPECT_NE(derive_session_keys(key_of(1), 1, b, a, true).source_to_destination, keys.source_to_destination);
  EXPECT_NE(derive_session_keys(key_of(1), 1, a, b, false).source_to_destination, keys.source_to_destination);
  EXPECT_NE(derive_session_keys(key_of(2), 1, a, b, true).source_to_destination, keys.source_to_destination);
}

class Sealing : public ::testing::TestWithParam<bool> {
 protected:
  Sealing()
      : keys_(derive_session_keys(key_of(1), 9, random_nonce(), random_nonce(), GetParam())),
        source_(std::move(FrameCrypto::create(keys_, FrameCrypto::Side::kSource)).value()),
        destination_(std::move(FrameCrypto::create(keys_, FrameCrypto::Side::kDestination)).value()) {
    header_.magic.set(kFrameMagic);
    header_.type = static_cast<std::uint8_t>(FrameType::kData);
    header_.seq.set(5);
    header_.flags.set(kFrameSealed);
    for (std::size_t i = 0; i < text_.size(); ++i) text_[i] = static_cast<std::byte>(i * 7);
  }

  struct Sealed {
    FrameHeader header;
    std::array<std::byte, 1000> payload;
    SealTrailer trailer;
  };
  Sealed seal() {
    Sealed sealed{header_, text_, {}};
    source_.seal(sealed.header, sealed.payload, &sealed.trailer);
    return sealed;
  }
  OpenOutcome open(const Sealed& sealed, bool data = true) {
    std::array<std::byte, 1000> out;
    const OpenOutcome outcome = destination_.open(sealed.header, sealed.payload, out.data(), sealed.trailer, data);
    if (outcome == OpenOutcome::kOk) {
      EXPECT_EQ(out, text_);
    }
    return outcome;
  }

  SessionKeys keys_;
  FrameCrypto source_, destination_;
  FrameHeader header_{};
  std::array<std::byte, 1000> text_;
};

TEST_P(Sealing, RoundTripsAndEncryptsOnlyWhenAskedTo) {
  const Sealed sealed = seal();
  EXPECT_EQ(sealed.payload == text_, !GetParam());
  EXPECT_EQ(sealed.trailer.counter.get(), 0u);
  EXPECT_EQ(open(sealed), OpenOutcome::kOk);
  // The same text sealed again: a new counter, so other ciphertext and tag.
  const Sealed again = seal();
  EXPECT_EQ(again.trailer.counter.get(), 1u);
  EXPECT_NE(std::memcmp(again.trailer.tag, sealed.trailer.tag, 16), 0);
  if (GetParam()) {
    EXPECT_NE(again.payload, sealed.payload);
  }
}

TEST_P(Sealing, AnyChangeToHeaderPayloadCounterOrTagFails) {
  auto tampered = [&](auto&& change) {
    Sealed sealed = seal();
    change(sealed);
    return open(sealed);
  };
  EXPECT_EQ(tampered([](Sealed& s) { s.payload[999] ^= std::byte{1}; }), OpenOutcome::kBadTag);
  EXPECT_EQ(tampered([](Sealed& s) { s.header.seq.set(6); }), OpenOutcome::kBadTag);
  EXPECT_EQ(tampered([](Sealed& s) { s.header.stream.set(1); }), OpenOutcome::kBadTag);
  EXPECT_EQ(tampered([](Sealed& s) { s.trailer.counter.set(s.trailer.counter.get() + 1); }), OpenOutcome::kBadTag);
  EXPECT_EQ(tampered([](Sealed& s) { s.trailer.tag[0] ^= 1; }), OpenOutcome::kBadTag);
  // Our own direction's frames do not open as the peer's: a reflected frame fails.
  Sealed sealed = seal();
  std::array<std::byte, 1000> out;
  auto reflector = std::move(FrameCrypto::create(keys_, FrameCrypto::Side::kSource)).value();
  EXPECT_EQ(reflector.open(sealed.header, sealed.payload, out.data(), sealed.trailer, true), OpenOutcome::kBadTag);
}

// A payload scattered over segments opens piece by piece, at any cut (odd, inside a cipher
// block); a changed byte in any piece still fails the tag.
TEST_P(Sealing, OpensAPayloadInPieces) {
  Sealed sealed = seal();
  std::byte* bytes = sealed.payload.data();
  const std::array<CipherPiece, 3> pieces{{{bytes, 7}, {bytes + 7, 513}, {bytes + 520, 480}}};
  ASSERT_EQ(destination_.open(sealed.header, pieces, sealed.trailer, true), OpenOutcome::kOk);
  EXPECT_EQ(sealed.payload, text_);
  Sealed tampered = seal();
  tampered.payload[600] ^= std::byte{1};
  bytes = tampered.payload.data();
  const std::array<CipherPiece, 3> again{{{bytes, 7}, {bytes + 7, 513}, {bytes + 520, 480}}};
  EXPECT_EQ(destination_.open(tampered.header, again, tampered.trailer, true), OpenOutcome::kBadTag);
}

TEST_P(Sealing, DecryptsInPlace) {
  Sealed sealed = seal();
  ASSERT_EQ(destination_.open(sealed.header, sealed.payload, sealed.payload.data(), sealed.trailer, true),
            OpenOutcome::kOk);
  EXPECT_EQ(sealed.payload, text_);
}

INSTANTIATE_TEST_SUITE_P(AuthenticatedAndEncrypted, Sealing, ::testing::Bool());

TEST(ReplayWindow, FramesSentOnceAreTakenOnceInAnyOrderWithinTheWindow) {
  ReplayWindow window;
  EXPECT_TRUE(window.accept(10, false));
  EXPECT_FALSE(window.accept(10, false));
  EXPECT_TRUE(window.accept(5, false));  // late, not seen: fine
  EXPECT_FALSE(window.accept(5, false));
  EXPECT_TRUE(window.accept(10 + ReplayWindow::kWindow, false));
  EXPECT_FALSE(window.accept(10, false));  // slid out of the window: cannot tell, refused
  EXPECT_TRUE(window.accept(11 + 1, false));
  EXPECT_FALSE(window.accept(11 + 1, false));
}

TEST(ReplayWindow, DataMayRepeatWithinTheHorizonOnly) {
  ReplayWindow window;
  EXPECT_TRUE(window.accept(100, true));
  EXPECT_TRUE(window.accept(100, true));  // a retransmission: same bytes, same counter
  EXPECT_TRUE(window.accept(ReplayWindow::kDataHorizon + 50, false));
  EXPECT_TRUE(window.accept(100, true));
  EXPECT_TRUE(window.accept(2 * ReplayWindow::kDataHorizon, false));
  EXPECT_FALSE(window.accept(100, true));  // older than any frame still in flight
}

TEST(PreSharedKey, ShortKeysAreRefusedSayingHowToMakeOne) {
  const auto key = PreSharedKey::from_hex("00112233", "PAGEWIRE_PSK");
  ASSERT_FALSE(key);
  EXPECT_NE(key.error().message.find("PAGEWIRE_PSK: the key holds 4 bytes; at least 32"), std::string::npos);
  EXPECT_FALSE(PreSharedKey::from_hex("0g", "x"));
  EXPECT_FALSE(PreSharedKey::from_hex("abc", "x"));  // odd
}

TEST(PreSharedKey, FilesHoldHexOrRawBytesAndMustBePrivate) {
  const std::string dir = ::testing::TempDir();
  const std::string hex_path = dir + "/pw-key-hex", raw_path = dir + "/pw-key-raw";
  std::string hex;
  std::string raw;
  for (int i = 0; i < 32; ++i) {
    static const char* digits = "0123456789abcdef";
    hex += digits[(i * 7 + 3) % 16];
    hex += digits[(i * 5 + 1) % 16];
    raw += static_cast<char>(((i * 7 + 3) % 16) << 4 | ((i * 5 + 1) % 16));
  }
  std::ofstream(hex_path) << hex << "\n";
  std::ofstream(raw_path, std::ios::binary) << raw;
  ::chmod(hex_path.c_str(), 0644);
  const auto exposed = PreSharedKey::from_file(hex_path);
  ASSERT_FALSE(exposed);
  EXPECT_NE(exposed.error().message.find("chmod 600"), std::string::npos);
  ::chmod(hex_path.c_str(), 0600);
  ::chmod(raw_path.c_str(), 0600);
  const auto from_hex_file = PreSharedKey::from_file(hex_path);
  const auto from_raw_file = PreSharedKey::from_file(raw_path);
  ASSERT_TRUE(from_hex_file) << from_hex_file.error().message;
  ASSERT_TRUE(from_raw_file) << from_raw_file.error().message;
  EXPECT_TRUE(std::equal(from_hex_file->bytes().begin(), from_hex_file->bytes().end(), from_raw_file->bytes().begin(),
                         from_raw_file->bytes().end()));
  EXPECT_FALSE(PreSharedKey::from_file(dir + "/pw-no-such-key"));
  ::unlink(hex_path.c_str());
  ::unlink(raw_path.c_str());
}

}  // namespace
}  // namespace pagewire::transport
