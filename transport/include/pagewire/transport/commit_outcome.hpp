// How a destination says a session ended (OUTCOME frames, query_outcome()).
#pragma once

#include <cstdint>

namespace pagewire::transport {

// What a destination says of a session's commit.
enum class CommitOutcome : std::uint8_t {
  kUnknown = 0,       // no answer, or the destination does not know the session
  kCommitted = 1,     // its commit action finished: the destination owns the guest
  kNotCommitted = 2,  // refused, aborted or cancelled: it keeps no image
  kPending = 3,       // still running, no COMMIT yet: nothing is decided
};
// "committed", "not committed", "pending" or "unknown".
const char* to_string(CommitOutcome outcome);

}  // namespace pagewire::transport
