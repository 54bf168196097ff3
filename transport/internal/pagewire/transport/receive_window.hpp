// The receive side of a stream's window as pure logic (no DPDK): which sequence numbers are
// taken, what is held out of order until the hole before it fills, what comes next in order,
// and what the ACK tells the sender (the cumulative ACK, 64 selective bits after it, and
// 64-frame blocks further out, most recent first). It holds the caller's items (the
// stream's frames) by pointer and owns none of them.
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
    kAhead,      // within the window, after a hole: hold() it
    kDuplicate,  // below the cumulative ACK, or held already: our ACK was lost
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
  explicit ReceiveWindow(std::uint32_t slots, std::uint32_t first = 0) : slots_(slots, nullptr), next_(first) {}

  Admission admit(std::uint32_t seq) const {
    const std::int32_t ahead = seq_diff(seq, next_);
    if (ahead < 0) return Admission::kDuplicate;
    if (static_cast<std::uint32_t>(ahead) >= slots_.size()) return Admission::kOutside;
    if (ahead == 0) return Admission::kInOrder;
    return slot(seq) != nullptr ? Admission::kDuplicate : Admission::kAhead;
  }
  // After admit() said kAhead. Remembers the 64-frame block for the ACKs.
  void hold(std::uint32_t seq, Item* item) {
    slot(seq) = item;
    ++held_;
    remember_block(seq & ~63u);
  }
  // The in-order item was applied: the next sequence number is due.
  void advance() { ++next_; }
  // The held item that is now next, taken out (and the window advanced past it); null when
  // the next one has not arrived.
  Item* take_next() {
    Item* item = slot(next_);
    if (item == nullptr) return nullptr;
    slot(next_) = nullptr;
    --held_;
    ++next_;
    return item;
  }
  // The item held at `seq` (within the window), or null.
  Item* held_at(std::uint32_t seq) const {
    const std::int32_t ahead = seq_diff(seq, next_);
    return ahead > 0 && static_cast<std::uint32_t>(ahead) < slots_.size() ? slot(seq) : nullptr;
  }

  std::uint32_t next() const { return next_; }
  std::uint32_t held() const { return held_; }
  std::uint32_t advertised() const { return static_cast<std::uint32_t>(slots_.size()) - 1; }
  // Every held item, to be released by the owner (at the end of the stream).
  template <typename Release>
  void release_all(Release&& release) {
    for (Item*& item : slots_) {
      if (item != nullptr) release(item);
      item = nullptr;
    }
    held_ = 0;
  }

  Blocks blocks() const {
    Blocks out;
    for (std::uint32_t bit = 0; bit < 64 && bit + 1 < slots_.size(); ++bit) {
      if (slot(next_ + 1 + bit) != nullptr) out.after_next |= std::uint64_t{1} << bit;
    }
    // Further out, most recent first; frames below next() count as received.
    for (std::uint32_t b = 0; b < recent_count_; ++b) {
      const std::uint32_t base = recent_[b];
      if (seq_diff(base + 64, next_ + 65) <= 0) continue;  // inside the selective bits, or acknowledged
      std::uint64_t received = 0;
      for (std::uint32_t bit = 0; bit < 64; ++bit) {
        const std::uint32_t seq = base + bit;
        if (seq_diff(seq, next_) < 0 || held_at(seq) != nullptr) received |= std::uint64_t{1} << bit;
      }
      out.base[out.count] = base;
      out.received[out.count] = received;
      ++out.count;
    }
    return out;
  }

 private:
  Item*& slot(std::uint32_t seq) { return slots_[seq & (slots_.size() - 1)]; }
  Item* slot(std::uint32_t seq) const { return slots_[seq & (slots_.size() - 1)]; }
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

  std::vector<Item*> slots_;
  std::uint32_t next_ = 0;
  std::uint32_t held_ = 0;
  std::array<std::uint32_t, kAckSackBlocks> recent_{};
  std::uint32_t recent_count_ = 0;
};

}  // namespace pagewire::transport
