// Asking a destination how a session ended, without that session: for a source whose
// COMMIT went unanswered (kCommitUnknown), from the same process or from a new one after a
// restart. The destination answers for as long as it lingers after its commit or refusal
// (SessionConfig::commit_linger_ms of silence, or until the source's CLOSE).
#pragma once

#include <cstdint>

#include "pagewire/result.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/commit_outcome.hpp"

namespace pagewire::transport {

// Asks over `port`'s queue 0, which no session may be polling, the destination `config`
// addresses (its peer MAC resolved with ARP when zero), every 200 ms until an answer that
// echoes this query's nonce (and, with config.security.key, proves the key) or `timeout_ms`.
// kUnknown when none came: whether the session committed stays unknown. Refused-looking
// or forged answers are counted in `counters` (optional) and ignored.
Result<CommitOutcome> query_outcome(const SessionConfig& config, const Port& port, std::uint32_t session,
                                    std::uint32_t timeout_ms, StreamCounters* counters = nullptr);

}  // namespace pagewire::transport
