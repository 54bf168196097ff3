// The secret both ends of an authenticated migration hold. Loaded from a file (raw bytes,
// or hex text) or from the environment as hex; at least 32 bytes, so the HMACs and keys
// derived from it carry 256 bits. Never printed: there is no operator<< and no accessor
// that returns text, and the bytes are wiped when the last copy goes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::transport {

class PreSharedKey {
 public:
  static constexpr std::size_t kMinBytes = 32;

  // A file readable by its owner only (like ssh, anything else is refused: the key would
  // not be secret). Contents: hex digits (whitespace ignored) or raw bytes.
  static Result<PreSharedKey> from_file(const std::string& path);
  // Hex digits, e.g. from an environment variable; `origin` names it in errors.
  static Result<PreSharedKey> from_hex(std::string_view hex, std::string_view origin);
  static Result<PreSharedKey> from_bytes(std::span<const std::uint8_t> bytes, std::string_view origin);
  // kMinBytes from OpenSSL's CSPRNG: a key for one occasion (the demo's two processes).
  static PreSharedKey generate();

  // Writes the key as hex to a new file only its owner can read (O_EXCL: never over an
  // existing file).
  Status write_file(const std::string& path) const;

  PreSharedKey(const PreSharedKey&) = default;
  PreSharedKey(PreSharedKey&&) noexcept = default;
  PreSharedKey& operator=(const PreSharedKey&) = default;
  PreSharedKey& operator=(PreSharedKey&&) noexcept = default;
  ~PreSharedKey();

  std::span<const std::uint8_t> bytes() const { return bytes_; }

 private:
  PreSharedKey() = default;
  std::vector<std::uint8_t> bytes_;
};

// The environment variable `pagewire src/dst/demo` read a hex key from when no
// --psk-file is given.
inline constexpr const char* kPreSharedKeyVariable = "PAGEWIRE_PSK";

}  // namespace pagewire::transport
