#include "pagewire/pagecodec/delta_cache.hpp"

#include <cstring>
#include <string>

#include "pagewire/pagecodec/record.hpp"

namespace pagewire::pagecodec {

DeltaCache::DeltaCache(std::uint32_t page_size, std::uint64_t region_pages, std::size_t slots)
    : page_size_(page_size),
      slot_of_page_(slots > 0 ? region_pages : 0, kNoSlot),
      sent_before_(slots > 0 ? (region_pages + 63) / 64 : 0, 0),
      slot_pages_(slots, 0),
      slot_generations_(slots, 0),
      data_(slots > 0 ? std::make_unique<std::byte[]>(slots * page_size) : nullptr) {
  free_slots_.reserve(slots);
  for (std::size_t slot = slots; slot-- > 0;) free_slots_.push_back(static_cast<std::uint32_t>(slot));
}

Result<DeltaCache> DeltaCache::create(std::uint32_t page_size, std::uint64_t region_pages,
                                      std::uint64_t capacity_bytes) {
  if (!is_valid_page_size(page_size)) {
    return make_error("page size " + std::to_string(page_size) +
                      " is not supported: expected a power of two from 4096 to 65536");
  }
  const std::uint64_t slots = capacity_bytes / page_size;
  if (slots >= kNoSlot) {
    return make_error("delta cache of " + std::to_string(capacity_bytes) +
                      " bytes has too many slots: expected fewer than 2^32 pages");
  }
  return DeltaCache(page_size, region_pages, static_cast<std::size_t>(slots));
}

std::byte* DeltaCache::lookup(std::uint64_t page, std::uint32_t* generation_out) {
  if (page >= slot_of_page_.size() || slot_of_page_[page] == kNoSlot) {
    ++counters_.misses;
    return nullptr;
  }
  const std::uint32_t slot = slot_of_page_[page];
  ++counters_.hits;
  *generation_out = slot_generations_[slot];
  return slot_data(slot);
}

std::uint32_t DeltaCache::take_slot(std::uint32_t generation) {
  if (!free_slots_.empty()) {
    const std::uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  for (int probe = 0; probe < kVictimProbes; ++probe) {
    const std::uint32_t slot = clock_hand_;
    if (++clock_hand_ == slot_pages_.size()) clock_hand_ = 0;  // no division per probe
    // Unsigned: a slot from a later round than `generation` (rounds restarted) is stale too.
    if (generation - slot_generations_[slot] <= 1) continue;
    slot_of_page_[slot_pages_[slot]] = kNoSlot;
    ++counters_.evictions;
    return slot;
  }
  ++counters_.refusals;
  return kNoSlot;
}

void DeltaCache::record_sent(std::uint64_t page, const std::byte* content,
                             std::uint32_t generation) {
  if (page >= slot_of_page_.size()) return;  // disabled cache, or not a page of the region
  std::uint32_t slot = slot_of_page_[page];
  if (slot == kNoSlot) {
    std::uint64_t& word = sent_before_[page / 64];
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    if ((word & bit) == 0) {
      word |= bit;
      return;
    }
    slot = take_slot(generation);
    if (slot == kNoSlot) return;
    slot_pages_[slot] = page;
    slot_of_page_[page] = slot;
    ++counters_.insertions;
  }
  if (content != nullptr) {
    std::memcpy(slot_data(slot), content, page_size_);
  } else {
    std::memset(slot_data(slot), 0, page_size_);
  }
  slot_generations_[slot] = generation;
}

void DeltaCache::set_generation(std::uint64_t page, std::uint32_t generation) {
  if (page < slot_of_page_.size() && slot_of_page_[page] != kNoSlot) {
    slot_generations_[slot_of_page_[page]] = generation;
  }
}

void DeltaCache::invalidate(std::uint64_t page) {
  if (page >= slot_of_page_.size() || slot_of_page_[page] == kNoSlot) return;
  const std::uint32_t slot = slot_of_page_[page];
  slot_of_page_[page] = kNoSlot;
  free_slots_.push_back(slot);
  ++counters_.invalidations;
}

}  // namespace pagewire::pagecodec
