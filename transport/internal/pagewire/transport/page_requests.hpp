// Postcopy's order of sending at the source, for one stream: pages the destination's guest
// touched (PAGE_REQUEST) go before the rest of the round, once each, and the round then
// skips them. A plain class: no DPDK type, unit-tested without EAL.
//
// A request is served only for a page of this stream still ahead in the round: one the
// round already sent is on its way (the transport delivers it), and one outside the round
// is not missing there. Asking again for a page is harmless; so is a flood, which fills the
// bounded queue and waits for the round like any other page.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace pagewire::transport {

class PageRequests {
 public:
  enum class Take : std::uint8_t { kQueued, kAlreadyAsked, kAlreadySent, kNotInRound, kFull };
  static constexpr std::size_t kMaxWaiting = 1024;
  // How far ahead in the round unserved_prefix() looks for a page served on request: the
  // encoder takes at most a frame's or a deflate batch's worth of pages at once.
  static constexpr std::size_t kLookAhead = 64;

  // The round about to start (ascending pages, within [first_page, end_page)): allocates its
  // bit per page here, so that nothing on the data path does. Empty `round`: not serving.
  void begin(std::span<const std::uint64_t> round, std::uint64_t first_page, std::uint64_t end_page) {
    round_ = round;
    first_page_ = first_page;
    served_.assign(round.empty() ? 0 : (end_page - first_page + 63) / 64, 0);
    waiting_.clear();
    waiting_.reserve(kMaxWaiting);
    batch_.clear();
    batch_.reserve(kMaxWaiting);
    batch_left_ = {};
  }
  bool serving() const { return !served_.empty(); }

  // A request for `page`; `ahead` is what the round has still to send (its front is next).
  Take ask(std::uint64_t page, std::span<const std::uint64_t> ahead) {
    if (!serving() || !std::binary_search(round_.begin(), round_.end(), page)) return Take::kNotInRound;
    if (ahead.empty() || page < ahead.front()) return Take::kAlreadySent;
    if (is_served(page)) return Take::kAlreadyAsked;
    if (waiting_.size() == kMaxWaiting) return Take::kFull;
    mark_served(page);
    waiting_.push_back(page);
    return Take::kQueued;
  }

  // The requested pages to encode now (ascending), or empty: none waits. Consume from the
  // front with taken().
  std::span<const std::uint64_t> requested() {
    if (batch_left_.empty() && !waiting_.empty()) {
      batch_.swap(waiting_);
      waiting_.clear();
      std::sort(batch_.begin(), batch_.end());  // the encoder takes ascending pages
      batch_left_ = batch_;
    }
    return batch_left_;
  }
  void taken(std::size_t count) { batch_left_ = batch_left_.subspan(count); }

  // Drops the pages at the front of `ahead` already sent on request, and returns how many of
  // the rest may be encoded before the next one that was.
  std::size_t unserved_prefix(std::span<const std::uint64_t>* ahead) const {
    if (!serving()) return ahead->size();
    std::size_t skip = 0;
    while (skip < ahead->size() && is_served((*ahead)[skip])) ++skip;
    *ahead = ahead->subspan(skip);
    const std::size_t look = std::min(ahead->size(), kLookAhead);
    for (std::size_t i = 0; i < look; ++i) {
      if (is_served((*ahead)[i])) return i;
    }
    return look == kLookAhead ? kLookAhead : ahead->size();
  }
  bool idle() const { return waiting_.empty() && batch_left_.empty(); }
  // `page` must go again whatever was sent of it (the destination refused it: RESEND), so
  // it is no longer skipped as sent on request.
  void forget(std::uint64_t page) {
    if (!serving() || page < first_page_ || page - first_page_ >= served_.size() * 64) return;
    const std::uint64_t bit = page - first_page_;
    served_[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
  }

 private:
  bool is_served(std::uint64_t page) const {
    const std::uint64_t bit = page - first_page_;
    return (served_[bit / 64] >> (bit % 64)) & 1;
  }
  void mark_served(std::uint64_t page) {
    const std::uint64_t bit = page - first_page_;
    served_[bit / 64] |= std::uint64_t{1} << (bit % 64);
  }

  std::span<const std::uint64_t> round_;
  std::uint64_t first_page_ = 0;
  std::vector<std::uint64_t> served_;   // a bit per page of the stream: queued on request
  std::vector<std::uint64_t> waiting_;  // asked for, not yet in a batch
  std::vector<std::uint64_t> batch_;    // being sent
  std::span<const std::uint64_t> batch_left_;
};

}  // namespace pagewire::transport
