// A dirty tracker for writers that say what they write: one bit per page, set from any
// thread (the guest model's writer, a hypervisor's own write-fault path), collected by the
// migration's control thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "pagewire/migration/hooks.hpp"

namespace pagewire::migration {

// One bit per page. The guest sets a page's bit after writing it (release); the migration
// exchanges whole words with zero (acquire) before reading the pages. So a write is either
// seen by the read that follows the exchange, or its bit is set again after the exchange and
// the page goes in the next round: no write is ever lost.
class DirtyLog final : public DirtyTracker {
 public:
  explicit DirtyLog(std::uint64_t pages) : words_((pages + 63) / 64), pages_(pages) {}

  void mark(std::uint64_t page) {
    words_[page / 64].fetch_or(std::uint64_t{1} << (page % 64), std::memory_order_release);
  }
  // The writers mark from the start: nothing to arm or disarm.
  Status start() override { return Ok{}; }
  // Moves the marks into `pages` and clears them. Control thread only.
  Status collect(DirtyPages& pages) override;
  void stop() override {}
  std::uint64_t pages() const { return pages_; }

 private:
  std::vector<std::atomic<std::uint64_t>> words_;
  std::uint64_t pages_;
};

}  // namespace pagewire::migration
