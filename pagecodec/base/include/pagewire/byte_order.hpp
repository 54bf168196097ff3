// The one place where pagewire's own wire headers choose their byte order.
//
// pagewire headers are little-endian on the wire: every host we target (x86-64, arm64) is
// little-endian, so the fast path does no swapping. Ethernet/IPv4/UDP fields stay big-endian
// and use DPDK's rte_be types in transport/. Fields are wrapped so that a raw integer can
// never be read or written by accident: there is deliberately no implicit conversion.
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>

namespace pagewire {

// No constructors on purpose: GCC packs only old-style PODs, and these sit in packed structs.
template <std::unsigned_integral T>
class [[gnu::packed]] LittleEndian {
 public:
  static LittleEndian from(T host_value) {
    LittleEndian v;
    v.set(host_value);
    return v;
  }

  T get() const { return swap_if_needed(wire_); }
  void set(T host_value) { wire_ = swap_if_needed(host_value); }

 private:
  static T swap_if_needed(T v) {
    if constexpr (std::endian::native == std::endian::little || sizeof(T) == 1) {
      return v;
    } else if constexpr (sizeof(T) == 2) {
      return __builtin_bswap16(v);
    } else if constexpr (sizeof(T) == 4) {
      return __builtin_bswap32(v);
    } else {
      return __builtin_bswap64(v);
    }
  }

  T wire_;
};

using le16 = LittleEndian<std::uint16_t>;
using le32 = LittleEndian<std::uint32_t>;
using le64 = LittleEndian<std::uint64_t>;

static_assert(sizeof(le16) == 2 && sizeof(le32) == 4 && sizeof(le64) == 8);
static_assert(alignof(le64) == 1);

}  // namespace pagewire
