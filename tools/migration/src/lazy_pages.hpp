// Postcopy's destination side (issue 22): guest pages the destination does not hold yet
// fault on their first touch (userfaultfd "missing" mode) and are reported to whoever
// fetches them; a page is installed atomically (UFFDIO_COPY, UFFDIO_ZEROPAGE), which wakes
// every thread waiting on it. Installing a page that is already there (fetched twice, or
// pushed in the background while a request for it was in flight) changes nothing, so the
// guest's own writes since are never overwritten.
//
// The region is private anonymous memory (as the kernel requires of "missing" mode there).
// Pages the destination already holds current stay as they are; the others are dropped when
// the region is armed, so a stale copy is never read.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "fault_thread.hpp"
#include "page_run.hpp"
#include "wait_histogram.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

class LazyPages {
 public:
  // Told of each page a thread touched while it was missing, on the fault thread; it must
  // not block on the page itself (the fetch is someone else's). A page touched again
  // before it arrives may be reported again.
  using OnMissing = std::function<void(std::uint64_t page)>;
  enum class Installed : std::uint8_t { kInstalled, kAlreadyPresent };
  // How long touched pages waited, from the fault's report to their install: a remote
  // fault's latency.
  using Latencies = WaitSummary;

  // Registers `region` (page-aligned, whole pages of `page_size`) and drops `missing`
  // (ascending runs of page indices within it, apart).
  static Result<std::unique_ptr<LazyPages>> start(std::span<std::byte> region, std::size_t page_size,
                                                  std::span<const PageRun> missing, OnMissing on_missing);
  ~LazyPages();  // stops the fault thread and unregisters: untouched missing pages read as zero after

  // Any thread. `bytes` holds the page's page_size bytes (null: a zero page).
  Result<Installed> install(std::uint64_t page, const std::byte* bytes);
  Result<Installed> install_zero(std::uint64_t page);
  // Pages [first, first + count) from `bytes` (count pages; null: zero pages) in one call
  // where none is there yet; those already there keep what they hold. Returns how many
  // were installed.
  Result<std::uint64_t> install_run(std::uint64_t first, std::uint64_t count, const std::byte* bytes);

  std::uint64_t faults() const { return faults_.load(std::memory_order_relaxed); }
  Latencies latencies() const { return waits_.summary(); }
  const WaitHistogram& waits() const { return waits_; }

 private:
  LazyPages(std::span<std::byte> region, std::size_t page_size, int uffd, OnMissing on_missing)
      : region_(region),
        page_size_(page_size),
        uffd_(uffd),
        on_missing_(std::move(on_missing)),
        // calloc: zero pages the kernel maps as slots are first used, not megabytes written
        // while the guest waits to start.
        faulted_at_ns_(static_cast<std::uint64_t*>(std::calloc(region.size() / page_size, sizeof(std::uint64_t)))) {}
  Status arm(std::span<const PageRun> missing);
  std::atomic_ref<std::uint64_t> faulted_at(std::uint64_t page) { return std::atomic_ref(faulted_at_ns_.get()[page]); }
  void on_fault(const PageFault& fault);
  Status check_run(std::uint64_t first, std::uint64_t count) const;
  void note_wait(std::uint64_t page);

  std::span<std::byte> region_;
  std::size_t page_size_;
  int uffd_;
  OnMissing on_missing_;
  std::atomic<std::uint64_t> faults_{0};
  // Per page: when its fault was reported (steady-clock ns), 0 when none is waiting. Any
  // thread may install; no lock: each slot is reached through an atomic_ref.
  struct Free {
    void operator()(std::uint64_t* slots) const { std::free(slots); }
  };
  std::unique_ptr<std::uint64_t[], Free> faulted_at_ns_;
  WaitHistogram waits_;
  std::unique_ptr<FaultThread> thread_;  // declared last: stops before the rest goes
};

}  // namespace pagewire::migration
