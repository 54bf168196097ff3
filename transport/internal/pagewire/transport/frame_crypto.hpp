// Sealing frames of an authenticated session: AES-256-GCM under one key per direction,
// derived from the pre-shared key and both sides' HELLO nonces (docs/protocol.md,
// "Authentication and encryption"). Every frame after HELLO_ACK carries a SealTrailer: a
// frame without one, with a tag that does not match, or replayed, is dropped and counted.
//
// Threading: a FrameCrypto belongs to one queue pair, and so to whichever thread polls that
// queue (a stream's core, or the control thread before and after the streams run), exactly
// as the queue does. seal() and open() neither allocate nor lock: the cipher contexts are
// set up with their keys once, and each frame only sets its nonce.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "pagewire/result.hpp"
#include "pagewire/transport/pre_shared_key.hpp"
#include "pagewire/transport/wire.hpp"

struct evp_cipher_ctx_st;

namespace pagewire::transport {

using Nonce = std::array<std::uint8_t, 32>;
using SymmetricKey = std::array<std::uint8_t, 32>;

// A fresh random nonce for HELLO / HELLO_ACK (OpenSSL's CSPRNG).
Nonce random_nonce();

struct SessionKeys {
  SymmetricKey source_to_destination{};
  SymmetricKey destination_to_source{};
  bool encrypt = false;
  SessionKeys() = default;
  SessionKeys(const SessionKeys&) = default;
  SessionKeys& operator=(const SessionKeys&) = default;
  ~SessionKeys();
};

// HKDF-SHA256 (RFC 5869): `out.size()` bytes from `secret`, `salt` and `info`.
void hkdf_sha256(std::span<const std::uint8_t> secret, std::span<const std::uint8_t> salt,
                 std::span<const std::uint8_t> info, std::span<std::uint8_t> out);

// Both directions' keys for `session`: HKDF of the pre-shared key, salted with the source's
// and the destination's nonces, so no two sessions share a key even with the same secret.
SessionKeys derive_session_keys(const PreSharedKey& key, std::uint32_t session, const Nonce& source_nonce,
                                const Nonce& destination_nonce, bool encrypt);

// Which frame counters of the peer's stream have been accepted: RFC 4303's sliding window
// for frames sent once (ACKs, control), wide enough for a jittery path's reordering, and a
// horizon for DATA, which is retransmitted as the same sealed bytes with the same counter
// and whose duplicates the stream finds by sequence number.
class ReplayWindow {
 public:
  static constexpr std::uint64_t kWindow = 1024;
  // A DATA frame's counter this far behind the highest seen is a replay: the sender cannot
  // have that many frames in flight, and within it sequence numbers (2^32) are unambiguous.
  static constexpr std::uint64_t kDataHorizon = std::uint64_t{1} << 24;

  // True, and remembered, if `counter` is new; false for a replay.
  bool accept(std::uint64_t counter, bool retransmitted_as_is);

 private:
  bool test_and_set(std::uint64_t counter);

  bool seen_any_ = false;
  std::uint64_t highest_ = 0;
  std::array<std::uint64_t, kWindow / 64> seen_{};  // bit (c mod kWindow): counter c accepted
};

enum class OpenOutcome : std::uint8_t { kOk, kBadTag, kReplayed };

// One piece of a payload that lies in several buffers (a segment chain), opened in place.
struct CipherPiece {
  std::byte* bytes = nullptr;
  std::size_t length = 0;
};

class FrameCrypto {
 public:
  enum class Side : std::uint8_t { kSource, kDestination };

  // The sealing and opening state of one stream (queue) on `side`.
  static Result<FrameCrypto> create(const SessionKeys& keys, Side side);
  FrameCrypto(FrameCrypto&&) noexcept;
  FrameCrypto& operator=(FrameCrypto&&) noexcept;
  ~FrameCrypto();

  bool encrypts() const { return encrypt_; }

  // Seals `payload` in place (encrypts it if the session does) with `header` (as on the
  // wire, flags already saying sealed) as additional data; fills `trailer`.
  void seal(const FrameHeader& header, std::span<std::byte> payload, SealTrailer* trailer);

  // One of our own sealed frames' payload back in clear, into `out`: to cut a frame built
  // before the path's MTU fell into parts. False only if the bytes are not what we sealed.
  bool unseal_own(const FrameHeader& header, std::span<const std::byte> in, std::byte* out,
                  const SealTrailer& trailer);

  // Checks the tag of a frame from the peer and decrypts `in` into `out` (the same or
  // non-overlapping memory, as long as `in`). `out` holds garbage if the tag fails.
  // `retransmitted_as_is`: DATA, whose counter may repeat (ReplayWindow).
  OpenOutcome open(const FrameHeader& header, std::span<const std::byte> in, std::byte* out,
                   const SealTrailer& trailer, bool retransmitted_as_is);
  // The same for a payload in `pieces`, in order, decrypted in place.
  OpenOutcome open(const FrameHeader& header, std::span<const CipherPiece> pieces, const SealTrailer& trailer,
                   bool retransmitted_as_is);

 private:
  struct CipherDeleter {
    void operator()(evp_cipher_ctx_st* context) const;
  };
  using Cipher = std::unique_ptr<evp_cipher_ctx_st, CipherDeleter>;
  FrameCrypto() = default;
  OpenOutcome accept_counter(const SealTrailer& trailer, bool retransmitted_as_is);

  Cipher sealer_;
  Cipher opener_;
  Cipher own_opener_;  // our direction's key, for unseal_own
  bool encrypt_ = false;
  std::uint64_t next_counter_ = 0;
  ReplayWindow replay_;
};

}  // namespace pagewire::transport
