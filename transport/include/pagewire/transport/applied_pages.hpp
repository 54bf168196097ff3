// Told of every page a destination stream writes, on that stream's core, right after the
// write: whoever keeps something per page (a digest, a "page has arrived" map for postcopy,
// a hypervisor's own bookkeeping) updates it while the bytes are still in that core's cache,
// instead of a thread of its own finding and rereading them later.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pagewire::transport {

class AppliedPagesObserver {
 public:
  virtual ~AppliedPagesObserver() = default;

  // Pages [first_page, first_page + count) of the region were written whole by a record
  // (one that failed to apply is refused and comes again; its pages are told of then).
  // Called on the core that polls the stream owning those pages, once per record. Streams
  // own disjoint page ranges, so calls for one page never run at once; calls for different
  // streams do. It runs on the data path: no allocation, locks or exceptions, and no
  // syscall but the one postcopy needs to place the pages where its guest waits for them.
  virtual void pages_written(std::uint64_t first_page, std::uint32_t count) noexcept = 0;
  // Postcopy (DestinationSession::begin_postcopy): pages [first_page, first_page + count)
  // arrived, decoded at `bytes` (count pages back to back; null: all zero), and were not
  // written to the region: put them where the guest waits for them. Same core and rules as
  // pages_written(); `bytes` is good until it returns.
  virtual void pages_arrived(std::uint64_t first_page, std::uint32_t count, const std::byte* bytes) noexcept = 0;
};

}  // namespace pagewire::transport
