// The receive side of a stream's window as pure logic (no DPDK): which sequence numbers are
// taken, what is held out of order until the hole before it fills (or was applied as it
// arrived, and is only remembered), what comes next in order, and what the ACK tells the
// sender (the cumulative ACK, 64 selective bits after it, and 64-frame blocks further out,
// most recent first). It holds the caller's items (the stream's frames) by pointer and owns
// none of them.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

template <typename Item>
class ReceiveWindow {
 public:
  enum class Admission : std::uint8_t {
    kInOrder,    // the next one: apply it, then take_next() what it unblocks
    kAhead,      // within the window, after a hole: hold() it, or apply it and applied_ahead()
    kDuplicate,  // below the cumulative ACK, or arrived already: our ACK was lost
    kOutside,    // beyond what we hold: the sender overran our advertised window
  };
  // What an ACK reports beyond the cumulative one.
  struct Blocks {
    std::uint64_t after_next = 0;  // bit b: next() + 1 + b is held
    std::array<std::uint32_t, kAckSackBlocks> base{};
    std::array<std::uint64_t, kAckSackBlocks> received{};  // bit b: base + b arrived
    std::size_t count = 0;
  };

  // `slots`: a power of two; the window advertises slots - 1. `first`: the first sequence
  // number expected (a stream starts at 0; sequence numbers wrap at 2^32).
  explicit ReceiveWindow(std::uint32_t slots, std::uint32_t first = 0) : slots_(slots), next_(first) {}

  Admission admit(std::uint32_t seq) const {
    const std::int32_t ahead = seq_diff(seq, next_);
    if (ahead < 0) return Admission::kDuplicate;
    if (static_cast<std::uint32_t>(ahead) >= slots_.size()) return Admission::kOutside;
    if (ahead == 0) return Admission::kInOrder;
    return slot(seq).arrived() ? Admission::kDuplicate : Admission::kAhead;
  }
  // After admit() said kAhead. Remembers the 64-frame block for the ACKs.
  void hold(std::uint32_t seq, Item* item) {
    slot(seq).item = item;
    ++held_;
    remember_block(seq & ~63u);
  }
  // After admit() said kAhead, for an item the caller applied as it arrived: nothing is
  // held, the arrival is remembered for the ACKs and for passing it in order.
  void applied_ahead(std::uint32_t seq) {
    slot(seq).applied = true;
    remember_block(seq & ~63u);
  }
  // The item held at `seq` was applied ahead (with a frame that arrived later): handed back
  // for the caller to release, and only its arrival remembered.
  Item* applied_held(std::uint32_t seq) {
    Slot& held = slot(seq);
    Item* item = held.item;
    held = Slot{.item = nullptr, .applied = true};
    --held_;
    return item;
  }
  // The in-order item was applied: the next sequence number is due.
  void advance() { ++next_; }
  // The next sequence number, if it arrived: the window advances past it. `item` is what
  // was held, null for one applied as it arrived.
  struct Arrival {
    bool arrived = false;
    Item* item = nullptr;
  };
  Arrival take_next() {
    Slot& next = slot(next_);
    if (!next.arrived()) return {};
    const Arrival arrival{true, next.item};
    if (next.item != nullptr) --held_;
    next = Slot{};
    ++next_;
    return arrival;
  }
  // The item held at `seq` (within the window), or null.
  Item* held_at(std::uint32_t seq) const { return within(seq) ? slot(seq).item : nullptr; }
  // Whether `seq` (within the window) arrived: held, or applied as it arrived.
  bool arrived(std::uint32_t seq) const { return within(seq) && slot(seq).arrived(); }

  std::uint32_t next() const { return next_; }
  std::uint32_t held() const { return held_; }
  std::uint32_t advertised() const { return static_cast<std::uint32_t>(slots_.size()) - 1; }
  // Every held item, to be released by the owner (at the end of the stream).
  template <typename Release>
  void release_all(Release&& release) {
    for (Slot& slot : slots_) {
      if (slot.item != nullptr) release(slot.item);
      slot = Slot{};
    }
    held_ = 0;
  }

  Blocks blocks() const {
    Blocks out;
    for (std::uint32_t bit = 0; bit < 64 && bit + 1 < slots_.size(); ++bit) {
      if (slot(next_ + 1 + bit).arrived()) out.after_next |= std::uint64_t{1} << bit;
    }
    // Further out, most recent first; frames below next() count as received.
    for (std::uint32_t b = 0; b < recent_count_; ++b) {
      const std::uint32_t base = recent_[b];
      if (seq_diff(base + 64, next_ + 65) <= 0) continue;  // inside the selective bits, or acknowledged
      std::uint64_t received = 0;
      for (std::uint32_t bit = 0; bit < 64; ++bit) {
        const std::uint32_t seq = base + bit;
        if (seq_diff(seq, next_) < 0 || arrived(seq)) received |= std::uint64_t{1} << bit;
      }
      out.base[out.count] = base;
      out.received[out.count] = received;
      ++out.count;
    }
    return out;
  }

 private:
  struct Slot {
    Item* item = nullptr;  // held
    bool applied = false;  // applied as it arrived
    bool arrived() const { return item != nullptr || applied; }
  };
  bool within(std::uint32_t seq) const {
    const std::int32_t ahead = seq_diff(seq, next_);
    return ahead > 0 && static_cast<std::uint32_t>(ahead) < slots_.size();
  }
  Slot& slot(std::uint32_t seq) { return slots_[seq & (slots_.size() - 1)]; }
  const Slot& slot(std::uint32_t seq) const { return slots_[seq & (slots_.size() - 1)]; }
  // Most recent first; a block seen again moves to the front.
  void remember_block(std::uint32_t base) {
    std::uint32_t at = 0;
    while (at < recent_count_ && recent_[at] != base) ++at;
    if (at == recent_count_) {
      if (recent_count_ < recent_.size()) ++recent_count_;
      at = recent_count_ - 1;
    }
    for (; at > 0; --at) recent_[at] = recent_[at - 1];
    recent_[0] = base;
  }

  std::vector<Slot> slots_;
  std::uint32_t next_ = 0;
  std::uint32_t held_ = 0;
  std::array<std::uint32_t, kAckSackBlocks> recent_{};
  std::uint32_t recent_count_ = 0;
};

}  // namespace pagewire::transport
