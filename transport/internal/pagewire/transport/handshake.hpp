// The HELLO exchange as pure functions of its payloads: what each side offers, what the
// destination refuses and why, and what the source accepts back. Every field is hostile
// input; libFuzzer drives these directly (tests/fuzz/handshake_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "pagewire/result.hpp"
#include "pagewire/transport/frame_crypto.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

// The largest record a side with `config` sends or accepts: a RAW deflate-batch fallback.
std::size_t max_record_bytes(const SessionConfig& config);

// What this side offers: its geometry, codecs, the largest IP packet its port takes, and
// (source) the security it asks for.
HelloPayload make_hello(const SessionConfig& config, std::uint16_t mtu);

// What the destination refuses, and why, in words both operators can act on.
struct Refusal {
  RefuseReason reason;
  std::string message;
};
std::optional<Refusal> check_hello(const HelloPayload& hello, const SessionConfig& config);
// The answer to a source of protocol version `theirs` (in its HELLO, or its frame header's).
Refusal version_refusal(std::uint32_t theirs);

// Authentication (docs/protocol.md): HELLO carries the source's nonce and an HMAC of the
// key over it, so a destination with another key says so at once. HELLO_ACK carries the
// destination's nonce and an HMAC over both HELLOs and both nonces: fresh proof, since the
// source's nonce is new. The source proves itself by sealing its next frame with the
// session keys, which only the key and both nonces give.
HelloAuth make_source_auth(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                           const Nonce& nonce);
bool source_auth_valid(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                       const HelloAuth& auth);
HelloAuth make_destination_auth(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                                const HelloAuth& source_auth, const HelloPayload& answer, const Nonce& nonce);
bool destination_auth_valid(const PreSharedKey& key, std::uint32_t session, const HelloPayload& hello,
                            const HelloAuth& source_auth, const HelloPayload& answer, const HelloAuth& answer_auth);
Nonce nonce_of(const HelloAuth& auth);

// The source's view of the destination's HELLO_ACK: the largest IP packet both ports take
// (the probe's ceiling), or why the answer is unusable.
Result<std::uint16_t> path_mtu_ceiling(const HelloPayload& answer, std::uint16_t port_mtu);

// A REFUSE payload's message, whatever bytes it holds: printable text, at most 125 bytes.
std::string refusal_message(const RefusePayload& refusal);

// An outcome query and its answer (wire.hpp): built, and checked against the key (without
// one, the nonce echo is all that is checked).
OutcomeQueryPayload make_outcome_query(const PreSharedKey* key, std::uint32_t session, const Nonce& nonce);
bool outcome_query_valid(const PreSharedKey* key, std::uint32_t session, const OutcomeQueryPayload& query);
OutcomePayload make_outcome(const PreSharedKey* key, std::uint32_t session, const OutcomeQueryPayload& query,
                            CommitOutcome outcome);
// The outcome the answer gives, if it answers `query` (the nonce echoed, the mac valid).
std::optional<CommitOutcome> outcome_of(const PreSharedKey* key, std::uint32_t session, const OutcomeQueryPayload& query,
                                        const OutcomePayload& answer);

// Whether a keyless frame's payload starts with `nonce`: the destination's, from a HELLO_ACK
// (a PROBE or a handshake's ABORT proves so that its sender heard the answer).
bool echoes(const std::byte* payload, std::size_t bytes, const Nonce& nonce);

// An ABORT's reason, whatever bytes it holds: printable text, at most kMaxAbortReason bytes,
// "(no reason given)" for none. A leading `echo` (a keyless source's ABORT of its handshake
// carries the HELLO_ACK's nonce first) is not part of it.
inline constexpr std::size_t kMaxAbortReason = 200;
std::string abort_reason(const std::byte* payload, std::size_t bytes, const Nonce* echo = nullptr);

}  // namespace pagewire::transport
