// What a migration asks of the hypervisor that embeds it. The synthetic guest model
// (pagewire::sim) is one implementation; a KVM prototype is another (vCPUs for
// GuestControl, KVM_GET_DIRTY_LOG for DirtyTracker).
//
// Threading: every hook is called on the thread that called SourceMigration::run() or
// DestinationMigration::run(), never on a stream core, one call at a time. A hook may block
// (pausing vCPUs takes a while); the session keeps the peer informed meanwhile only where the
// contract below says so, so hooks on the switchover path should be quick.
//
// Order on the source (docs/embedding.md):
//   tracker.start()  round 0 (every page)  tracker.collect()  [round  collect  set_throttle()]...
//   guest.pause()  tracker.collect()  final round, verify, commit  tracker.stop()
// After a failure anywhere: set_throttle(0) if it was throttled, resume() if it was paused,
// tracker.stop(): the guest runs on the source as before.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "pagewire/migration/dirty_pages.hpp"
#include "pagewire/migration/ram_block.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

class GuestControl {
 public:
  virtual ~GuestControl() = default;
  // Returns once nothing writes guest memory (every vCPU stopped, device DMA quiesced) and
  // nothing will until resume(). Called once, at the switchover; a failure aborts the
  // migration and the guest keeps running (resume() is still called, to undo a half-pause).
  virtual Status pause() = 0;
  // Lets the guest run again after a failed switchover. Never called after a commit: the
  // guest then runs on the destination and the source's copy must stay stopped.
  virtual void resume() = 0;
  // Auto-converge: withhold `fraction` (0 = none, < 1) of the guest's CPU time so it dirties
  // memory more slowly. A failure aborts the migration.
  virtual Status set_throttle(double fraction) = 0;
};

class DirtyTracker {
 public:
  virtual ~DirtyTracker() = default;
  // From here on every write to guest memory is reported by some collect(). Called once,
  // before round 0 (which sends every page, so earlier writes need no record).
  virtual Status start() = 0;
  // Marks in `pages` every page written since start() or the previous collect(): with
  // DirtyPages::mark/mark_range, or a KVM-style bitmap in one DirtyPages::merge_bitmap call.
  // A write that races a collect() is reported by it or the next one, never lost.
  virtual Status collect(DirtyPages& pages) = 0;
  virtual void stop() = 0;
  // True when a page handed to a round cannot change until the round is acknowledged (the
  // tracker write-protects it and holds the writer, or copies on write): every round may
  // then send raw pages straight from guest memory (zero-copy), not only the paused one.
  virtual bool protects_pages_in_flight() const { return false; }
};

// The destination's image, complete and verified, handed over before COMMIT is acknowledged.
struct CommittedImage {
  std::span<const RamBlock> ram;  // the blocks given to Destination::accept, now holding the guest
  std::span<const std::byte> device_state;
  std::string digest;  // hex, as both ends report it
};

// "The image is yours: start the guest." Runs on the destination's control thread after the
// digests matched and the source sent COMMIT, and before the destination acknowledges it: the
// source reports success only after this returned Ok. It must finish within the source's
// commit timeout (MigrationOptions::commit_timeout_ms). A failure refuses the commit: the
// source is told why, resumes its guest, and this image must be discarded.
using CommitHook = std::function<Status(const CommittedImage&)>;

// Postcopy: the guest as it starts on the destination before all its pages did. `ram` is
// live: a page not there yet faults on first touch and the toucher waits while it is fetched
// from the source (reads and writes alike), so the guest may run at once.
struct StartingImage {
  std::span<const RamBlock> ram;
  std::span<const std::byte> device_state;
  std::uint64_t missing_pages = 0;  // still to come
};

// "Start the guest now": postcopy's switch, on the destination's control thread, while the
// source's guest is paused. Return quickly: the guest's pause lasts until this returns. A
// failure refuses the switch (the source resumes its guest, this image is discarded). After
// it returned Ok, neither end holds the whole guest: should the migration then fail (the
// source gone past its resume window), run() says so with kGuestLost and the guest here
// must be stopped, for its missing pages will never come.
using PostcopyStartHook = std::function<Status(const StartingImage&)>;

}  // namespace pagewire::migration
