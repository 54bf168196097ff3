// The destination's guest memory during postcopy: the pages it lacks fault on first touch
// (LazyPages, one per RAM block) and are reported with their migration-wide page number;
// pages that arrive are placed into the guest atomically, from a stream core.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "lazy_pages.hpp"
#include "pagewire/migration/migration_memory.hpp"
#include "switch_record.hpp"

namespace pagewire::migration {

class PostcopyPages {
 public:
  using OnMissing = LazyPages::OnMissing;  // told the migration-wide page number

  // Drops `missing` (guest pages only) from `memory`'s RAM blocks and arms their faults.
  static Result<std::unique_ptr<PostcopyPages>> start(const MigrationMemory& memory,
                                                      std::span<const PageRun> missing, OnMissing on_missing);

  // On a stream core: pages [first, first + count) as they arrived, at `bytes` (null: zero
  // pages). Pages outside the guest's RAM (the device state) are not the guest's to fault
  // on: skipped. A failure is kept (failure()): the page stays missing.
  void place(std::uint64_t first, std::uint64_t count, const std::byte* bytes) noexcept;

  std::uint64_t missing() const { return missing_; }
  std::uint64_t placed() const { return placed_.load(std::memory_order_relaxed); }
  std::uint64_t faults() const;
  WaitSummary latencies() const;  // over every block
  // The first placement that failed, or empty. Control thread, once the streams stopped.
  std::string failure() const;

 private:
  struct Block {
    std::uint64_t first_page;
    std::uint64_t pages;
    std::unique_ptr<LazyPages> lazy;
  };
  std::uint32_t page_size_ = 0;
  std::uint64_t missing_ = 0;
  std::vector<Block> blocks_;
  std::atomic<std::uint64_t> placed_{0};
  std::atomic<bool> failed_{false};
  std::string failure_;  // written once, by whoever set failed_ first
};

}  // namespace pagewire::migration
