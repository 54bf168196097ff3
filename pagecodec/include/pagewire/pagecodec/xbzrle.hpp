// XBZRLE-style page delta, wire-compatible in spirit with QEMU's xbzrle: the payload is a
// sequence of (ULEB128 unchanged-run length, ULEB128 changed-run length, changed bytes)
// triples; a trailing unchanged run is omitted, so an empty payload means "same as base".
//
// Where we differ from QEMU: the encoder updates the sender's cached copy in the same pass,
// from the very bytes it emits. The guest may be writing the page while we read it; reading
// each byte once and emitting it from the cache means the cache always equals exactly what
// the receiver will reconstruct, with no snapshot copy of the page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pagewire::pagecodec::xbzrle {

// A run length never exceeds kMaxPageSize (65536 < 2^21), so three ULEB128 bytes suffice;
// longer encodings are refused by the decoder.
inline constexpr std::size_t kMaxUlebBytes = 3;

inline constexpr std::size_t kOverflow = SIZE_MAX;

// Encodes `current` against `cache` (both page_size bytes) into `out`, and makes `cache`
// equal to the bytes that were read from `current`. Returns the payload length, or
// kOverflow when the payload would not fit in out.size(); after an overflow the cache is a
// mix of old and new bytes and the caller must overwrite or invalidate it.
// Owned by the calling core; `current` may change concurrently, `cache` and `out` may not.
using EncodeFn = std::size_t (*)(const std::byte* current, std::byte* cache,
                                 std::size_t page_size, std::span<std::byte> out);

std::size_t encode_scalar(const std::byte* current, std::byte* cache, std::size_t page_size,
                          std::span<std::byte> out);
std::size_t encode_avx2(const std::byte* current, std::byte* cache, std::size_t page_size,
                        std::span<std::byte> out);

// The fastest variant this CPU supports, chosen once at start-up (ISA-L's dispatch idea);
// encode_scalar is the reference twin that the tests compare it with.
EncodeFn best_encoder();
const char* best_encoder_name();

// Checks that `payload` is a well-formed delta for a page of page_size bytes: canonical
// ULEB128 lengths, no empty changed run, no run past the page end. Touches no page memory.
bool validate(std::span<const std::byte> payload, std::size_t page_size);

// Applies a payload that validate() accepted onto `page` (which holds the base content).
void apply_validated(std::span<const std::byte> payload, std::byte* page);

}  // namespace pagewire::pagecodec::xbzrle
