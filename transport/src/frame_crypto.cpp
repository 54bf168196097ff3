#include "pagewire/transport/frame_crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <cstring>
#include <string_view>

namespace pagewire::transport {

namespace {

constexpr std::size_t kTagBytes = sizeof(SealTrailer::tag);
constexpr std::size_t kIvBytes = 12;

// The GCM nonce: the stream and the sender's frame counter on it. Keys differ per
// direction, so the pair never repeats under one key while the counter does not wrap
// (2^64 frames).
std::array<std::uint8_t, kIvBytes> nonce_of(std::uint16_t stream, std::uint64_t counter) {
  std::array<std::uint8_t, kIvBytes> iv{};
  le32 s;
  s.set(stream);
  le64 c;
  c.set(counter);
  std::memcpy(iv.data(), &s, sizeof s);
  std::memcpy(iv.data() + sizeof s, &c, sizeof c);
  return iv;
}

}  // namespace

Nonce random_nonce() {
  Nonce nonce{};
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    // Without entropy no session may start: a predictable nonce would repeat keys.
    std::abort();
  }
  return nonce;
}

SessionKeys::~SessionKeys() {
  OPENSSL_cleanse(source_to_destination.data(), source_to_destination.size());
  OPENSSL_cleanse(destination_to_source.data(), destination_to_source.size());
}

void hkdf_sha256(std::span<const std::uint8_t> secret, std::span<const std::uint8_t> salt,
                 std::span<const std::uint8_t> info, std::span<std::uint8_t> out) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* context = kdf != nullptr ? EVP_KDF_CTX_new(kdf) : nullptr;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<std::uint8_t*>(info.data()), info.size()),
      OSSL_PARAM_construct_end()};
  const bool derived = context != nullptr && EVP_KDF_derive(context, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(context);
  EVP_KDF_free(kdf);
  // OpenSSL's default provider always has HKDF-SHA256; without it nothing here is safe.
  if (!derived) std::abort();
}

SessionKeys derive_session_keys(const PreSharedKey& key, std::uint32_t session, const Nonce& source_nonce,
                                const Nonce& destination_nonce, bool encrypt) {
  std::array<std::uint8_t, 2 * sizeof(Nonce)> salt;
  std::memcpy(salt.data(), source_nonce.data(), source_nonce.size());
  std::memcpy(salt.data() + source_nonce.size(), destination_nonce.data(), destination_nonce.size());
  // The session and whether it encrypts are bound into the keys: a peer talked out of
  // encrypting by a forged HELLO would derive other keys than its partner.
  constexpr std::string_view kLabel = "pagewire v3 session keys";
  std::array<std::uint8_t, kLabel.size() + sizeof(le32) + 1> info;
  std::memcpy(info.data(), kLabel.data(), kLabel.size());
  le32 id;
  id.set(session);
  std::memcpy(info.data() + kLabel.size(), &id, sizeof id);
  info.back() = encrypt ? 1 : 0;
  std::array<std::uint8_t, 64> both{};
  hkdf_sha256(key.bytes(), salt, info, both);
  SessionKeys keys;
  std::memcpy(keys.source_to_destination.data(), both.data(), 32);
  std::memcpy(keys.destination_to_source.data(), both.data() + 32, 32);
  keys.encrypt = encrypt;
  OPENSSL_cleanse(both.data(), both.size());
  return keys;
}

bool ReplayWindow::test_and_set(std::uint64_t counter) {
  std::uint64_t& word = seen_[(counter % kWindow) / 64];
  const std::uint64_t bit = std::uint64_t{1} << (counter % 64);
  const bool was_set = (word & bit) != 0;
  word |= bit;
  return was_set;
}

bool ReplayWindow::accept(std::uint64_t counter, bool retransmitted_as_is) {
  if (!seen_any_ || counter > highest_) {
    // Forget the counters the window slides past: their bits now stand for new ones.
    const std::uint64_t advance = seen_any_ ? counter - highest_ : kWindow;
    if (advance >= kWindow) {
      seen_.fill(0);
    } else {
      for (std::uint64_t c = highest_ + 1; c <= counter; ++c) {
        seen_[(c % kWindow) / 64] &= ~(std::uint64_t{1} << (c % 64));
      }
    }
    highest_ = counter;
    seen_any_ = true;
    test_and_set(counter);
    return true;
  }
  const std::uint64_t behind = highest_ - counter;
  if (retransmitted_as_is) return behind < kDataHorizon;
  if (behind >= kWindow) return false;
  return !test_and_set(counter);
}

void FrameCrypto::CipherDeleter::operator()(evp_cipher_ctx_st* context) const { EVP_CIPHER_CTX_free(context); }

FrameCrypto::FrameCrypto(FrameCrypto&&) noexcept = default;
FrameCrypto& FrameCrypto::operator=(FrameCrypto&&) noexcept = default;
FrameCrypto::~FrameCrypto() = default;

Result<FrameCrypto> FrameCrypto::create(const SessionKeys& keys, Side side) {
  FrameCrypto crypto;
  crypto.encrypt_ = keys.encrypt;
  crypto.sealer_.reset(EVP_CIPHER_CTX_new());
  crypto.opener_.reset(EVP_CIPHER_CTX_new());
  crypto.own_opener_.reset(EVP_CIPHER_CTX_new());
  const bool source = side == Side::kSource;
  const SymmetricKey& own = source ? keys.source_to_destination : keys.destination_to_source;
  const SymmetricKey& peer = source ? keys.destination_to_source : keys.source_to_destination;
  if (!crypto.sealer_ || !crypto.opener_ || !crypto.own_opener_ ||
      EVP_EncryptInit_ex(crypto.sealer_.get(), EVP_aes_256_gcm(), nullptr, own.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(crypto.opener_.get(), EVP_aes_256_gcm(), nullptr, peer.data(), nullptr) != 1 ||
      EVP_DecryptInit_ex(crypto.own_opener_.get(), EVP_aes_256_gcm(), nullptr, own.data(), nullptr) != 1) {
    return make_error("AES-256-GCM is not available from OpenSSL (libcrypto): cannot seal frames");
  }
  return crypto;
}

void FrameCrypto::seal(const FrameHeader& header, std::span<std::byte> payload, SealTrailer* trailer) {
  const std::uint64_t counter = next_counter_++;
  const auto iv = nonce_of(header.stream.get(), counter);
  EVP_CIPHER_CTX* context = sealer_.get();
  int length = 0;
  auto* bytes = reinterpret_cast<unsigned char*>(payload.data());
  const int size = static_cast<int>(payload.size());
  EVP_EncryptInit_ex(context, nullptr, nullptr, nullptr, iv.data());
  EVP_EncryptUpdate(context, nullptr, &length, reinterpret_cast<const unsigned char*>(&header), sizeof header);
  if (encrypt_) {
    EVP_EncryptUpdate(context, bytes, &length, bytes, size);
  } else if (size > 0) {
    EVP_EncryptUpdate(context, nullptr, &length, bytes, size);  // authenticated, readable
  }
  EVP_EncryptFinal_ex(context, nullptr, &length);
  EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, kTagBytes, trailer->tag);
  trailer->counter.set(counter);
}

namespace {

// One piece of a payload being opened: from `in` to `out` (the same, or as long and apart).
struct OpenPiece {
  const std::byte* in;
  std::byte* out;
  std::size_t length;
};

// GCM decryption and tag check of one frame, its payload in `pieces`, with `context`'s key.
bool decrypt(EVP_CIPHER_CTX* context, bool encrypted, const FrameHeader& header, std::span<const OpenPiece> pieces,
             const SealTrailer& trailer) {
  const auto iv = nonce_of(header.stream.get(), trailer.counter.get());
  int length = 0;
  EVP_DecryptInit_ex(context, nullptr, nullptr, nullptr, iv.data());
  EVP_DecryptUpdate(context, nullptr, &length, reinterpret_cast<const unsigned char*>(&header), sizeof header);
  for (const OpenPiece& piece : pieces) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(piece.in);
    const int size = static_cast<int>(piece.length);
    if (size == 0) continue;
    if (encrypted) {
      // GCM is a stream cipher: pieces of any length continue where the last one ended.
      EVP_DecryptUpdate(context, reinterpret_cast<unsigned char*>(piece.out), &length, bytes, size);
    } else {
      EVP_DecryptUpdate(context, nullptr, &length, bytes, size);
      if (piece.out != piece.in) std::memcpy(piece.out, piece.in, piece.length);
    }
  }
  std::uint8_t tag[kTagBytes];
  std::memcpy(tag, trailer.tag, sizeof tag);
  EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag);
  std::uint8_t unused[16];
  return EVP_DecryptFinal_ex(context, unused, &length) == 1;
}

}  // namespace

bool FrameCrypto::unseal_own(const FrameHeader& header, std::span<const std::byte> in, std::byte* out,
                             const SealTrailer& trailer) {
  const OpenPiece piece{in.data(), out, in.size()};
  return decrypt(own_opener_.get(), encrypt_, header, {&piece, 1}, trailer);
}

OpenOutcome FrameCrypto::open(const FrameHeader& header, std::span<const std::byte> in, std::byte* out,
                              const SealTrailer& trailer, bool retransmitted_as_is) {
  const OpenPiece piece{in.data(), out, in.size()};
  if (!decrypt(opener_.get(), encrypt_, header, {&piece, 1}, trailer)) return OpenOutcome::kBadTag;
  return accept_counter(trailer, retransmitted_as_is);
}

OpenOutcome FrameCrypto::open(const FrameHeader& header, std::span<const CipherPiece> pieces,
                              const SealTrailer& trailer, bool retransmitted_as_is) {
  std::array<OpenPiece, 32> in_place;
  if (pieces.size() > in_place.size()) return OpenOutcome::kBadTag;
  for (std::size_t p = 0; p < pieces.size(); ++p) in_place[p] = {pieces[p].bytes, pieces[p].bytes, pieces[p].length};
  if (!decrypt(opener_.get(), encrypt_, header, {in_place.data(), pieces.size()}, trailer)) return OpenOutcome::kBadTag;
  return accept_counter(trailer, retransmitted_as_is);
}

// Only an authentic counter may move the window, or a forgery could push it ahead.
OpenOutcome FrameCrypto::accept_counter(const SealTrailer& trailer, bool retransmitted_as_is) {
  return replay_.accept(trailer.counter.get(), retransmitted_as_is) ? OpenOutcome::kOk : OpenOutcome::kReplayed;
}

}  // namespace pagewire::transport
