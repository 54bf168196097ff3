// The destination's half of a migration, for an embedder: accept the source's session over
// a Link, then receive until the source commits, handing the image to the commit hook
// before the commit is acknowledged. No DPDK in sight.
//
// Threading: accept() and run() on the embedder's control thread; the commit hook is called
// on it too. Pages are written by the stream cores.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "pagewire/migration/hooks.hpp"
#include "pagewire/migration/link.hpp"
#include "pagewire/migration/report.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

class Destination {
 public:
  // `memory` as the source's (guest pages, then state pages): pre-faulted by the caller, so
  // that first touches do not land in the rounds; it must outlive the Destination. Waits up
  // to the link's timeout for a source's HELLO.
  static Result<Destination> accept(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                                    std::uint32_t page_size);
  // The same for RAM in several blocks: as many pages in all as the source's, in the same
  // order, though not necessarily cut at the same places; `state_area` as large as the
  // source's. Pre-faulted, outliving the Destination; the commit hook is handed them back.
  static Result<Destination> accept(Link& link, std::span<const RamBlock> ram, std::span<std::byte> state_area,
                                    std::uint32_t page_size);

  Destination(Destination&& other) noexcept;
  Destination& operator=(Destination&& other) noexcept;
  ~Destination();

  // Receives until the source's FIN, verifies, and on COMMIT calls `on_commit` (may be
  // empty) before acknowledging (DestinationMigration::run). Should the source switch to
  // postcopy, `on_postcopy_start` starts the guest first (empty: refused). Any error:
  // discard the memory (kGuestLost: stop the guest the start hook started, too).
  Result<ReceiveReport> run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms = 10000,
                            const PostcopyStartHook& on_postcopy_start = {});

  // Any thread, while run() runs or before: run() stops at its next wait and fails with
  // kCancelled after telling the source (ABORT), which then fails at once with its guest
  // running. Once the commit hook has run, it only cuts the wait for the source's CLOSE short.
  void cancel(std::string_view reason);

  std::uint16_t streams() const;

  struct Parts;  // the transport session, for the CLI (migration/internal/)
  Parts& parts() { return *parts_; }
  const Parts& parts() const { return *parts_; }
  explicit Destination(std::unique_ptr<Parts> parts);

 private:
  std::unique_ptr<Parts> parts_;
};

}  // namespace pagewire::migration
