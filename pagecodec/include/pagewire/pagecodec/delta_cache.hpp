// The sender's copy of pages as they were last sent, so that a re-dirtied page can go as a
// DELTA. One cache per stream core (pages map to streams by a fixed rule, so no page is in
// two caches); not thread-safe.
//
// Lookup is O(1) through a direct page -> slot index (4 bytes per guest page, 0.1% of the
// region at 4 KiB pages): a hash table would save that memory but adds a probe per page on
// the data path. Only pages sent a second time are inserted: the bulk round sends every
// page once and would otherwise flood the cache with pages that are never dirtied again.
// Eviction ages entries by round, as QEMU's XBZRLE cache does: a full cache gives up a slot
// only when its page was neither sent nor hit in this round or the one before. A round
// whose re-sent pages outnumber the slots therefore leaves the surplus uncached instead of
// evicting, in sending order, the pages that keep being re-dirtied (which plain CLOCK did:
// every pass evicted what the next would hit, and hits fell to nothing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::pagecodec {

struct DeltaCacheCounters {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t insertions = 0;
  std::uint64_t evictions = 0;
  std::uint64_t refusals = 0;  // pages not inserted: every slot probed held a fresh page
  std::uint64_t invalidations = 0;
};

// Per-core counters, summed on read.
inline DeltaCacheCounters& operator+=(DeltaCacheCounters& total, const DeltaCacheCounters& c) {
  total.hits += c.hits;
  total.misses += c.misses;
  total.insertions += c.insertions;
  total.evictions += c.evictions;
  total.refusals += c.refusals;
  total.invalidations += c.invalidations;
  return total;
}

class DeltaCache {
 public:
  struct Entry {
    std::byte* data;              // page_size bytes: the content last sent
    std::uint32_t* generation;    // generation of that content
  };

  // capacity_bytes / page_size slots (at least one when capacity_bytes >= page_size;
  // capacity_bytes == 0 disables the cache).
  static Result<DeltaCache> create(std::uint32_t page_size, std::uint64_t region_pages,
                                   std::uint64_t capacity_bytes);

  // The cached copy of `page`, or nullptr. Counts a hit or miss.
  std::byte* lookup(std::uint64_t page, std::uint32_t* generation_out);

  // Whether `page` has a cached copy; counts nothing.
  bool contains(std::uint64_t page) const {
    return page < slot_of_page_.size() && slot_of_page_[page] != kNoSlot;
  }

  // Records that `page` was sent with `content` (nullptr: sent as a ZERO page) in round
  // `generation`, the current one (rounds count up): refreshes its slot when present,
  // inserts it when this is at least its second send and a slot is free or stale (last
  // sent or hit before the previous round), otherwise only remembers that it was sent.
  void record_sent(std::uint64_t page, const std::byte* content, std::uint32_t generation);

  // After a delta was encoded in place into a slot returned by lookup(): the slot holds
  // round `generation`'s content, and counts as fresh.
  void set_generation(std::uint64_t page, std::uint32_t generation);

  // Drops `page` (e.g. it was sent as ZERO, or a delta overflowed and left the slot mixed).
  void invalidate(std::uint64_t page);

  std::size_t slot_count() const { return slot_pages_.size(); }
  std::uint64_t capacity_bytes() const { return slot_pages_.size() * std::uint64_t{page_size_}; }
  std::size_t used_slots() const { return slot_pages_.size() - free_slots_.size(); }
  const DeltaCacheCounters& counters() const { return counters_; }

 private:
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;
  // Slots a full cache looks at for a stale one before it refuses a page: at most 16 compares
  // per refusal on the data path, and a cache with a quarter of its slots stale still finds
  // one 99 % of the time (1 - 0.75^16).
  static constexpr int kVictimProbes = 16;
  DeltaCache(std::uint32_t page_size, std::uint64_t region_pages, std::size_t slots);
  // A free slot, or a stale one (its page dropped), or kNoSlot.
  std::uint32_t take_slot(std::uint32_t generation);
  std::byte* slot_data(std::uint32_t slot) { return data_.get() + std::size_t{slot} * page_size_; }

  std::uint32_t page_size_;
  std::vector<std::uint32_t> slot_of_page_;   // region_pages entries, kNoSlot when absent
  std::vector<std::uint64_t> sent_before_;    // bitmap: page was sent at least once
  std::vector<std::uint64_t> slot_pages_;     // page held by each slot (valid if used)
  std::vector<std::uint32_t> slot_generations_;
  std::vector<std::uint32_t> free_slots_;     // capacity reserved up front: never allocates
  std::unique_ptr<std::byte[]> data_;
  std::uint32_t clock_hand_ = 0;
  DeltaCacheCounters counters_;
};

}  // namespace pagewire::pagecodec
