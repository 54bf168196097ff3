// Synchronous userfaultfd write-protection, the WriteTracker's fallback for kernels without
// asynchronous write-protection (before 6.7; UFFD-WP itself needs 5.7): every first write to
// a protected page stops its writer with a fault that this handler's thread records and
// resolves by lifting the protection of that page, which wakes the writer. A look takes the
// recorded pages and protects them again.
//
// One mutex orders the handler's "record, then unprotect" against a look's "take, then
// protect again", so a page is never left unprotected with its record already taken: a
// write is either recorded or lands before the look's protection, which precedes the
// migration's read of the page. Writers pay a fault (two context switches) per page per
// round: slower than the asynchronous mode, which pays none.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "fault_thread.hpp"
#include "pagewire/migration/dirty_pages.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

class WriteFaultHandler {
 public:
  // `uffd` is registered for write-protection over `region` and outlives this handler.
  static Result<std::unique_ptr<WriteFaultHandler>> start(int uffd, std::span<std::byte> region, std::size_t page_size);
  ~WriteFaultHandler() = default;  // the thread stops first; pages keep the protection they have

  // Marks the recorded pages in `pages` (the region's page p as first_page + p), forgets
  // them, and protects them again.
  Status collect(DirtyPages& pages, std::uint64_t first_page);

 private:
  WriteFaultHandler(int uffd, std::span<std::byte> region, std::size_t page_size);
  void on_fault(const PageFault& fault);  // on the fault thread
  Status protect(std::uint64_t first_page, std::uint64_t count, bool write_protect) const;

  int uffd_;
  std::span<std::byte> region_;
  std::size_t page_size_;
  std::mutex order_;
  std::vector<std::uint64_t> written_;  // one bit per page; under order_
  std::atomic<bool> failed_{false};     // the handler could not resolve a fault
  std::unique_ptr<FaultThread> thread_;  // declared last: stops before the rest goes
};

}  // namespace pagewire::migration
