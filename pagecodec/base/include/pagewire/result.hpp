// Result<T>: the outcome of an API-boundary call that can fail in a way the user must act on.
//
// C++20 has no std::expected (GCC 12 ships it only for C++23) and Debian 12 packages no
// tl::expected, so this is the smallest shape that serves: a value or an Error whose message
// names what was wrong and what was expected. Data-path functions never return it: they
// return enum-class outcomes and bump counters, because building a message allocates.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace pagewire {

// What kind of failure, for a caller that acts on it (retry, re-key, give up) rather than
// show it. The message says the rest. Stable numbers: the C ABI passes them on.
enum class ErrorCode : std::uint8_t {
  kFailed = 1,         // none of the below
  kConfiguration = 2,  // an option, argument or size out of range: fix the call
  kRefused = 3,        // the peer refused the session; Error::detail is the wire's RefuseReason
  kAuthentication = 4, // the peer could not prove it holds the key, or frames failed their seal
  kPeerGone = 5,       // the peer went silent past its timeout
  kTimeout = 6,        // a deadline of ours ran out (max_seconds, a round)
  kPath = 7,           // the network path cannot carry the session (MTU, no ARP answer)
  kAborted = 8,        // the peer aborted the migration; its reason is in the message
  kVerification = 9,   // the destination's image differs from the source's
  kCommitUnknown = 10, // COMMIT went out and no answer came: the destination may own the guest
  kCommitRefused = 11, // the destination could not take the guest (its commit hook failed)
  kHook = 12,          // an embedder's hook failed; its message is in ours
  kSystem = 13,        // the system refused: memory, a syscall, a device
  kCancelled = 14,     // this end was told to stop (cancel(), SIGINT or SIGTERM); the reason is in the message
  kGuestLost = 15,     // postcopy failed after the switch: neither end holds the whole guest
};

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::kFailed;
  std::uint32_t detail = 0;  // kRefused: the wire's RefuseReason; otherwise 0
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

// For calls that produce nothing but can fail.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(std::string message) { return Error{std::move(message)}; }
inline Error make_error(ErrorCode code, std::string message, std::uint32_t detail = 0) {
  return Error{std::move(message), code, detail};
}
// The same failure, its message prefixed with where it happened.
inline Error in_context(const std::string& context, const Error& error) {
  return Error{context + error.message, error.code, error.detail};
}

}  // namespace pagewire
