#include "pagewire/transport/handshake.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace pagewire::transport {

namespace {

constexpr std::uint32_t bit_of(pagecodec::Encoding encoding) { return 1u << static_cast<int>(encoding); }
constexpr std::uint32_t kAllEncodings = bit_of(pagecodec::Encoding::kZero) | bit_of(pagecodec::Encoding::kRaw) |
                                        bit_of(pagecodec::Encoding::kDelta) | bit_of(pagecodec::Encoding::kDeflate) |
                                        bit_of(pagecodec::Encoding::kCopy);

std::uint32_t security_of(const SessionConfig& config) {
  if (!config.security.key) return 0;
  return kSecurityAuthenticated | (config.security.encrypt ? kSecurityEncrypted : 0);
}

// HMAC-SHA256 of the key over a label and the given parts, in order: the label keeps a
// source's proof from ever passing for a destination's.
class Transcript {
 public:
  explicit Transcript(std::string_view label) { append(label.data(), label.size()); }
  template <typename T>
  Transcript& add(const T& part) {
    append(&part, sizeof part);
    return *this;
  }
  void mac(const PreSharedKey& key, std::uint8_t (&out)[32]) const {
    unsigned length = 0;
    HMAC(EVP_sha256(), key.bytes().data(), static_cast<int>(key.bytes().size()), bytes_.data(), bytes_.size(), out,
         &length);
  }
  bool matches(const PreSharedKey& key, const std::uint8_t (&mac_bytes)[32]) const {
    std::uint8_t expected[32];
    mac(key, expected);
    return CRYPTO_memcmp(expected, mac_bytes, sizeof expected) == 0;
  }

 private:
  void append(const void* part, std::size_t size) {
    const std::size_t at = bytes_.size();
    bytes_.resize(at + size);
    std::memcpy(bytes_.data() + at, part, size);
  }
  std::vector<std::uint8_t> bytes_;
};

Transcript source_transcript(std::uint32_t session, const HelloPayload& hello, const HelloAuth& auth) {
  le32 id;
  id.set(session);
  Transcript transcript("pagewire v3 source hello");
  transcript.add(id).add(hello).add(auth.nonce);
  return transcript;
}

Transcript destination_transcript(std::uint32_t session, const HelloPayload& hello, const HelloAuth& source_auth,
                                  const HelloPayload& answer, const HelloAuth& answer_auth) {
  le32 id;
  id.set(session);
  Transcript transcript("pagewire v3 destination hello-ack");
  transcript.add(id).add(hello).add(source_auth).add(answer).add(answer_auth.nonce);
  return transcript;
}

}  // namespace

HelloAuth make_source_auth(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                           const Nonce& nonce) {
  HelloAuth auth{};
  std::memcpy(auth.nonce, nonce.data(), nonce.size());
  source_transcript(session, hello, auth).mac(key, auth.mac);
  return auth;
}

bool source_auth_valid(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                       const HelloAuth& auth) {
  return source_transcript(session, hello, auth).matches(key, auth.mac);
}

HelloAuth make_destination_auth(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                                const HelloAuth& source_auth, const HelloPayload& answer, const Nonce& nonce) {
  HelloAuth auth{};
  std::memcpy(auth.nonce, nonce.data(), nonce.size());
  destination_transcript(session, hello, source_auth, answer, auth).mac(key, auth.mac);
  return auth;
}

bool destination_auth_valid(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                            const HelloAuth& source_auth, const HelloPayload& answer, const HelloAuth& answer_auth) {
  return destination_transcript(session, hello, source_auth, answer, answer_auth).matches(key, answer_auth.mac);
}

Nonce nonce_of(const HelloAuth& auth) {
  Nonce nonce;
  std::memcpy(nonce.data(), auth.nonce, nonce.size());
  return nonce;
}

std::size_t max_record_bytes(const SessionConfig& config) {
  return pagecodec::max_record_bytes(config.policy, config.page_size);
}

HelloPayload make_hello(const SessionConfig& config, std::uint16_t mtu) {
  HelloPayload hello{};
  hello.version.set(kProtocolVersion);
  hello.page_size.set(config.page_size);
  hello.region_pages.set(config.region_pages);
  hello.streams.set(config.streams);
  hello.mtu.set(mtu);
  // COPY only when the policy sends it: a destination from before it still takes the rest.
  hello.encodings.set(config.policy.duplicates ? kAllEncodings : kAllEncodings & ~bit_of(pagecodec::Encoding::kCopy));
  hello.max_record_bytes.set(static_cast<std::uint32_t>(max_record_bytes(config)));
  hello.security.set(security_of(config));
  return hello;
}

Refusal version_refusal(std::uint32_t theirs) {
  return Refusal{RefuseReason::kVersion, "protocol version " + std::to_string(theirs) + " != destination's " +
                                             std::to_string(kProtocolVersion)};
}

std::optional<Refusal> check_hello(const HelloPayload& hello, const SessionConfig& config) {
  if (hello.version.get() != kProtocolVersion) return version_refusal(hello.version.get());
  if (hello.mtu.get() < kMinPathMtu || hello.mtu.get() > kMaxPathMtu) {
    return Refusal{RefuseReason::kMtu, "source MTU " + std::to_string(hello.mtu.get()) + ": expected " +
                                               std::to_string(kMinPathMtu) + ".." + std::to_string(kMaxPathMtu)};
  }
  if (hello.page_size.get() != config.page_size) {
    return Refusal{RefuseReason::kPageSize, "page size " + std::to_string(hello.page_size.get()) +
                                                " != destination's " + std::to_string(config.page_size)};
  }
  if (hello.region_pages.get() > config.region_pages) {
    return Refusal{RefuseReason::kRegionTooSmall,
                   "source region of " + std::to_string(hello.region_pages.get()) +
                       " pages > destination region of " + std::to_string(config.region_pages) + " pages"};
  }
  // Any other count is fine: the session runs the smaller of the two offers.
  if (hello.streams.get() == 0) return Refusal{RefuseReason::kStreams, "the source offers no stream"};
  if ((hello.encodings.get() & ~kAllEncodings) != 0) {
    return Refusal{RefuseReason::kEncodings, "source uses encodings the destination cannot decode"};
  }
  const std::uint32_t security = hello.security.get();
  if ((security & ~(kSecurityAuthenticated | kSecurityEncrypted)) != 0 ||
      (security == kSecurityEncrypted)) {
    return Refusal{RefuseReason::kAuthentication, "source asks for unknown security options"};
  }
  if (config.security.key && (security & kSecurityAuthenticated) == 0) {
    return Refusal{RefuseReason::kAuthentication,
                   "the destination requires authentication: give the source the same pre-shared key"};
  }
  if (!config.security.key && (security & kSecurityAuthenticated) != 0) {
    return Refusal{RefuseReason::kAuthentication,
                   "the source authenticates with a pre-shared key; this destination has none"};
  }
  if (config.security.encrypt && (security & kSecurityEncrypted) == 0) {
    return Refusal{RefuseReason::kEncryption, "the destination requires an encrypted stream: run the source with encryption"};
  }
  if (hello.max_record_bytes.get() > max_record_bytes(config)) {
    return Refusal{RefuseReason::kEncodings, "source records of up to " + std::to_string(hello.max_record_bytes.get()) +
                                                 " bytes > destination's " + std::to_string(max_record_bytes(config)) +
                                                 " (deflate batch too large)"};
  }
  return std::nullopt;
}

Result<std::uint16_t> path_mtu_ceiling(const HelloPayload& answer, std::uint16_t port_mtu) {
  // Below the minimum an MTU would leave no room for a frame's headers (payload_for_mtu
  // would underflow).
  if (answer.mtu.get() < kMinPathMtu || answer.mtu.get() > kMaxPathMtu) {
    return make_error("the destination advertises MTU " + std::to_string(answer.mtu.get()) + ": expected " +
                      std::to_string(kMinPathMtu) + ".." + std::to_string(kMaxPathMtu));
  }
  return std::min(port_mtu, answer.mtu.get());
}

std::string refusal_message(const RefusePayload& refusal) {
  std::string message;
  for (char c : refusal.message) {
    if (c == '\0' || message.size() == sizeof refusal.message - 1) break;
    message += c >= 0x20 && c < 0x7f ? c : '?';
  }
  return message;
}

namespace {

Transcript outcome_query_transcript(std::uint32_t session, const std::uint8_t (&nonce)[32]) {
  le32 id;
  id.set(session);
  Transcript transcript("pagewire outcome query");
  transcript.add(id).add(nonce);
  return transcript;
}

Transcript outcome_transcript(std::uint32_t session, const std::uint8_t (&nonce)[32], std::uint8_t outcome) {
  le32 id;
  id.set(session);
  Transcript transcript("pagewire outcome");
  transcript.add(id).add(nonce).add(outcome);
  return transcript;
}

}  // namespace

OutcomeQueryPayload make_outcome_query(const PreSharedKey* key, std::uint32_t session, const Nonce& nonce) {
  OutcomeQueryPayload query{};
  std::memcpy(query.nonce, nonce.data(), nonce.size());
  if (key != nullptr) outcome_query_transcript(session, query.nonce).mac(*key, query.mac);
  return query;
}

bool outcome_query_valid(const PreSharedKey* key, std::uint32_t session, const OutcomeQueryPayload& query) {
  return key == nullptr || outcome_query_transcript(session, query.nonce).matches(*key, query.mac);
}

OutcomePayload make_outcome(const PreSharedKey* key, std::uint32_t session, const OutcomeQueryPayload& query,
                            CommitOutcome outcome) {
  OutcomePayload answer{};
  answer.outcome = static_cast<std::uint8_t>(outcome);
  std::memcpy(answer.nonce, query.nonce, sizeof answer.nonce);
  if (key != nullptr) outcome_transcript(session, answer.nonce, answer.outcome).mac(*key, answer.mac);
  return answer;
}

std::optional<CommitOutcome> outcome_of(const PreSharedKey* key, std::uint32_t session, const OutcomeQueryPayload& query,
                                        const OutcomePayload& answer) {
  if (CRYPTO_memcmp(answer.nonce, query.nonce, sizeof query.nonce) != 0) return std::nullopt;
  if (answer.outcome > static_cast<std::uint8_t>(CommitOutcome::kPending)) return std::nullopt;
  if (key != nullptr && !outcome_transcript(session, answer.nonce, answer.outcome).matches(*key, answer.mac)) {
    return std::nullopt;
  }
  return static_cast<CommitOutcome>(answer.outcome);
}

const char* to_string(CommitOutcome outcome) {
  switch (outcome) {
    case CommitOutcome::kCommitted: return "committed";
    case CommitOutcome::kNotCommitted: return "not committed";
    case CommitOutcome::kPending: return "pending";
    case CommitOutcome::kUnknown: break;
  }
  return "unknown";
}

bool echoes(const std::byte* payload, std::size_t bytes, const Nonce& nonce) {
  return bytes >= nonce.size() && std::memcmp(payload, nonce.data(), nonce.size()) == 0;
}

std::string abort_reason(const std::byte* payload, std::size_t bytes, const Nonce* echo) {
  if (echo != nullptr && echoes(payload, bytes, *echo)) {
    payload += echo->size();
    bytes -= echo->size();
  }
  std::string reason;
  for (std::size_t i = 0; i < std::min(bytes, kMaxAbortReason); ++i) {
    const auto c = static_cast<char>(payload[i]);
    reason += c >= 0x20 && c < 0x7f ? c : '?';
  }
  return reason.empty() ? "(no reason given)" : reason;
}

}  // namespace pagewire::transport
