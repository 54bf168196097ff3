// Result<T>: the outcome of an API-boundary call that can fail in a way the user must act on.
//
// C++20 has no std::expected (GCC 12 ships it only for C++23) and Debian 12 packages no
// tl::expected, so this is the smallest shape that serves: a value or an Error whose message
// names what was wrong and what was expected. Data-path functions never return it: they
// return enum-class outcomes and bump counters, because building a message allocates.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace pagewire {

struct Error {
  std::string message;
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

}  // namespace pagewire
