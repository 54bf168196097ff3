// Frames arriving in parts, as pure logic (no DPDK): which frame each part belongs to, which
// of its kFragmentUnit-sized units have come, and when it is whole. A source cuts only the
// frames it built before the path's MTU fell (docs/protocol.md, "Fragments"), so few are
// rebuilt at a time and the table is small and fixed. It holds the caller's items (the
// frames being rebuilt) by pointer and owns none of them.
#pragma once

#include <array>
#include <cstdint>

#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

template <typename Item, std::size_t kSlots = 64>
class FragmentRebuilds {
 public:
  struct Rebuild {
    std::uint32_t seq = 0;
    Item* item = nullptr;  // null: the slot is free
    std::uint32_t total = 0;  // the whole frame's payload bytes
    std::uint64_t units_have = 0;  // bit u: bytes [u, u + 1) x kFragmentUnit arrived
  };
  enum class Part : std::uint8_t {
    kMissingParts,  // noted; more are to come
    kWhole,         // the last missing part: take() the frame
    kRefused,       // not a part of this frame: another length, or bytes outside it
  };

  // The largest frame payload that can be rebuilt: one bit per unit.
  static constexpr std::uint32_t kMaxTotal = 64 * kFragmentUnit;

  // Releases the rebuilds of frames before `next` (they arrived whole meanwhile).
  template <typename Release>
  void forget_before(std::uint32_t next, Release&& release) {
    for (Rebuild& slot : slots_) {
      if (slot.item != nullptr && seq_diff(slot.seq, next) < 0) {
        release(slot.item);
        slot = Rebuild{};
      }
    }
  }
  // The rebuild of frame `seq`, or null.
  Rebuild* find(std::uint32_t seq) {
    for (Rebuild& slot : slots_) {
      if (slot.item != nullptr && slot.seq == seq) return &slot;
    }
    return nullptr;
  }
  bool full() const {
    for (const Rebuild& slot : slots_) {
      if (slot.item == nullptr) return false;
    }
    return true;
  }
  // A rebuild of frame `seq` (not being rebuilt) into `item`, `total` payload bytes long.
  // Null when the table is full or `total` is 0 or above kMaxTotal.
  Rebuild* start(std::uint32_t seq, std::uint32_t total, Item* item) {
    if (total == 0 || total > kMaxTotal || find(seq) != nullptr) return nullptr;
    for (Rebuild& slot : slots_) {
      if (slot.item != nullptr) continue;
      slot = Rebuild{.seq = seq, .item = item, .total = total, .units_have = 0};
      return &slot;
    }
    return nullptr;
  }
  // Bytes [offset, offset + length) of `rebuild`'s frame arrived in a part that says the
  // frame is `total` long. Refused unless they belong: the same length, inside the frame,
  // on a unit, whole units unless the part ends the frame (so the bookkeeping per unit is
  // exact). Else noted; the caller writes them into the item, and takes it once kWhole.
  static Part add(Rebuild& rebuild, std::uint32_t total, std::uint32_t offset, std::uint32_t length) {
    if (total != rebuild.total || !is_part(total, offset, length)) return Part::kRefused;
    const std::uint64_t end = std::uint64_t{offset} + length;
    const std::uint32_t first = offset / kFragmentUnit;
    const auto last = static_cast<std::uint32_t>((end + kFragmentUnit - 1) / kFragmentUnit);
    for (std::uint32_t unit = first; unit < last; ++unit) rebuild.units_have |= std::uint64_t{1} << unit;
    const std::uint32_t units = (rebuild.total + kFragmentUnit - 1) / kFragmentUnit;
    const std::uint64_t all = units == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << units) - 1;
    return rebuild.units_have == all ? Part::kWhole : Part::kMissingParts;
  }
  // Whether bytes [offset, offset + length) can be a part of a `total`-byte payload: inside
  // it, not empty, on a unit, whole units unless the part ends it. The frame parser asks
  // too, before a part is taken at all.
  static bool is_part(std::uint32_t total, std::uint32_t offset, std::uint32_t length) {
    const std::uint64_t end = std::uint64_t{offset} + length;
    return length != 0 && end <= total && offset % kFragmentUnit == 0 && (end == total || length % kFragmentUnit == 0);
  }
  // The whole frame, out of the table.
  Item* take(Rebuild& rebuild) {
    Item* item = rebuild.item;
    rebuild = Rebuild{};
    return item;
  }
  template <typename Release>
  void release_all(Release&& release) {
    for (Rebuild& slot : slots_) {
      if (slot.item != nullptr) release(slot.item);
      slot = Rebuild{};
    }
  }

 private:
  std::array<Rebuild, kSlots> slots_{};
};

}  // namespace pagewire::transport
