// The HELLO exchange: a peer that speaks an older protocol version, an impossible MTU, a
// smaller region or other geometry is refused with words that say what differs; what the
// source accepts back stays inside the legal MTU range; a hostile REFUSE becomes short,
// printable text. With a pre-shared key, each side's proof holds only for the same key,
// the same HELLOs and the same nonces.
#include "pagewire/transport/handshake.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace pagewire::transport {
namespace {

SessionConfig destination_config() {
  SessionConfig config;
  config.streams = 2;
  config.page_size = 4096;
  config.region_pages = 1024;
  return config;
}

TEST(Handshake, OwnHelloIsAccepted) {
  const SessionConfig config = destination_config();
  EXPECT_FALSE(check_hello(make_hello(config, 9000), config));
}

TEST(Handshake, OlderProtocolVersionIsRefusedSayingWhichVersions) {
  const SessionConfig config = destination_config();
  HelloPayload hello = make_hello(config, 9000);
  hello.version.set(1);
  const auto refusal = check_hello(hello, config);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->reason, RefuseReason::kVersion);
  EXPECT_EQ(refusal->message, "protocol version 1 != destination's " + std::to_string(kProtocolVersion));
}

TEST(Handshake, GeometryAndMtuMismatchesSayWhatDiffers) {
  const SessionConfig config = destination_config();
  HelloPayload hello = make_hello(config, 9000);
  hello.mtu.set(600);
  EXPECT_EQ(check_hello(hello, config)->reason, RefuseReason::kMtu);

  hello = make_hello(config, 9000);
  hello.region_pages.set(4096);
  EXPECT_EQ(check_hello(hello, config)->message, "source region of 4096 pages > destination region of 1024 pages");

  hello = make_hello(config, 9000);
  hello.streams.set(0);
  EXPECT_EQ(check_hello(hello, config)->message, "the source offers no stream");
  hello.streams.set(3);  // more or fewer than ours: the session runs the smaller offer
  EXPECT_FALSE(check_hello(hello, config));
  hello.streams.set(1);
  EXPECT_FALSE(check_hello(hello, config));

  hello = make_hello(config, 9000);
  hello.encodings.set(hello.encodings.get() | 1u << 9);
  EXPECT_EQ(check_hello(hello, config)->reason, RefuseReason::kEncodings);
}

TEST(Handshake, TheSourceTakesTheSmallerMtuAndRefusesImpossibleOnes) {
  HelloPayload answer = make_hello(destination_config(), 1500);
  auto ceiling = path_mtu_ceiling(answer, 9000);
  ASSERT_TRUE(ceiling);
  EXPECT_EQ(*ceiling, 1500);
  answer.mtu.set(100);
  EXPECT_FALSE(path_mtu_ceiling(answer, 9000));
  answer.mtu.set(65000);
  EXPECT_FALSE(path_mtu_ceiling(answer, 9000));
}

TEST(Handshake, RefusalMessagesAreBoundedPrintableText) {
  RefusePayload refusal;
  std::memset(&refusal, 0x07, sizeof refusal);  // no NUL anywhere, control characters
  const std::string message = refusal_message(refusal);
  EXPECT_EQ(message.size(), sizeof refusal.message - 1);
  EXPECT_EQ(message.find_first_not_of('?'), std::string::npos);
  std::memset(refusal.message, 0, sizeof refusal.message);
  std::memcpy(refusal.message, "page size 4096 != destination's 8192", 36);
  EXPECT_EQ(refusal_message(refusal), "page size 4096 != destination's 8192");
}

PreSharedKey key_of(std::uint8_t fill) {
  std::array<std::uint8_t, 32> bytes;
  bytes.fill(fill);
  return std::move(PreSharedKey::from_bytes(bytes, "test")).value();
}

TEST(Handshake, SecurityMismatchesAreRefusedSayingWhichSideLacksWhat) {
  SessionConfig source = destination_config();
  SessionConfig destination = destination_config();
  source.security.key = key_of(1);
  EXPECT_EQ(check_hello(make_hello(source, 9000), destination)->message,
            "the source authenticates with a pre-shared key; this destination has none");
  destination.security.key = key_of(1);
  EXPECT_FALSE(check_hello(make_hello(source, 9000), destination));
  destination.security.encrypt = true;
  EXPECT_EQ(check_hello(make_hello(source, 9000), destination)->reason, RefuseReason::kEncryption);
  source.security.encrypt = true;
  EXPECT_FALSE(check_hello(make_hello(source, 9000), destination));
  source.security.key.reset();
  source.security.encrypt = false;
  EXPECT_EQ(check_hello(make_hello(source, 9000), destination)->reason, RefuseReason::kAuthentication);
  HelloPayload hello = make_hello(destination, 9000);
  hello.security.set(kSecurityEncrypted);  // encryption without authentication does not exist
  EXPECT_EQ(check_hello(hello, destination)->reason, RefuseReason::kAuthentication);
}

TEST(Handshake, ProofsHoldOnlyForTheSameKeyHellosAndNonces) {
  SessionConfig config = destination_config();
  config.security.key = key_of(1);
  const HelloPayload hello = make_hello(config, 9000);
  const HelloPayload answer = make_hello(config, 1500);
  const Nonce source_nonce = random_nonce();
  const Nonce destination_nonce = random_nonce();
  EXPECT_NE(source_nonce, destination_nonce);

  const HelloAuth source_auth = make_source_auth(key_of(1), 7, hello, source_nonce);
  EXPECT_TRUE(source_auth_valid(key_of(1), 7, hello, source_auth));
  EXPECT_FALSE(source_auth_valid(key_of(2), 7, hello, source_auth));
  EXPECT_FALSE(source_auth_valid(key_of(1), 8, hello, source_auth));  // another session
  HelloPayload altered = hello;
  altered.region_pages.set(1);
  EXPECT_FALSE(source_auth_valid(key_of(1), 7, altered, source_auth));

  const HelloAuth answer_auth = make_destination_auth(key_of(1), 7, hello, source_auth, answer, destination_nonce);
  EXPECT_TRUE(destination_auth_valid(key_of(1), 7, hello, source_auth, answer, answer_auth));
  EXPECT_FALSE(destination_auth_valid(key_of(2), 7, hello, source_auth, answer, answer_auth));
  // Replayed to a source with a fresh nonce, an old HELLO_ACK proves nothing.
  const HelloAuth fresh = make_source_auth(key_of(1), 7, hello, random_nonce());
  EXPECT_FALSE(destination_auth_valid(key_of(1), 7, hello, fresh, answer, answer_auth));
  // A source's proof never passes for a destination's.
  HelloAuth reflected = source_auth;
  EXPECT_FALSE(destination_auth_valid(key_of(1), 7, hello, source_auth, answer, reflected));
  EXPECT_EQ(nonce_of(answer_auth), destination_nonce);
}

// Only the destination can say how a keyed session ended, and only to this query: another
// key, session, nonce or outcome byte fails. Without a key the nonce echo is what holds.
TEST(Handshake, OutcomeAnswersHoldOnlyForTheirQueryAndKey) {
  const PreSharedKey key = key_of(1), other = key_of(2);
  const OutcomeQueryPayload query = make_outcome_query(&key, 7, random_nonce());
  EXPECT_TRUE(outcome_query_valid(&key, 7, query));
  EXPECT_FALSE(outcome_query_valid(&other, 7, query));
  EXPECT_FALSE(outcome_query_valid(&key, 8, query));
  const OutcomePayload answer = make_outcome(&key, 7, query, CommitOutcome::kCommitted);
  EXPECT_EQ(outcome_of(&key, 7, query, answer), CommitOutcome::kCommitted);
  EXPECT_EQ(outcome_of(&other, 7, query, answer), std::nullopt);
  EXPECT_EQ(outcome_of(&key, 8, query, answer), std::nullopt);
  OutcomePayload flipped = answer;
  flipped.outcome = static_cast<std::uint8_t>(CommitOutcome::kNotCommitted);
  EXPECT_EQ(outcome_of(&key, 7, query, flipped), std::nullopt) << "the outcome byte is covered";
  const OutcomeQueryPayload later = make_outcome_query(&key, 7, random_nonce());
  EXPECT_EQ(outcome_of(&key, 7, later, answer), std::nullopt) << "an old answer replayed to a new query";
  OutcomePayload beyond = make_outcome(nullptr, 7, query, CommitOutcome::kPending);
  beyond.outcome = 9;
  EXPECT_EQ(outcome_of(nullptr, 7, query, beyond), std::nullopt) << "an outcome the protocol does not have";
  const OutcomePayload keyless = make_outcome(nullptr, 7, query, CommitOutcome::kNotCommitted);
  EXPECT_EQ(outcome_of(nullptr, 7, query, keyless), CommitOutcome::kNotCommitted);
  EXPECT_EQ(outcome_of(nullptr, 7, later, keyless), std::nullopt);
  EXPECT_EQ(std::string(to_string(CommitOutcome::kNotCommitted)), "not committed");
}

}  // namespace
}  // namespace pagewire::transport
