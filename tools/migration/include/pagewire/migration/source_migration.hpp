// Live migration over a pagewire session, the source's half: iterative pre-copy while the
// guest keeps writing, then a short switchover. The orchestration is a library; the CLI is
// one client of it and a hypervisor prototype another, through the hooks (hooks.hpp) for
// its guest and its dirty tracking. DestinationMigration is the other half.
//
// The region a session carries is the guest's pages followed by `state_pages` pages that hold
// the device state (an opaque blob, e.g. CPU and device registers, length-prefixed), sent
// with the final round. A migration succeeds only when the destination's digest of the
// whole region equals the source's and the destination confirms the commit; until then the
// source guest keeps running (or is resumed), as a failed vMotion leaves the VM on its host.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <span>
#include <string>
#include <vector>

#include "pagewire/pagecodec/record.hpp"
#include "pagewire/result.hpp"
#include "pagewire/migration/digest.hpp"
#include "pagewire/migration/hooks.hpp"
#include "pagewire/migration/migration_memory.hpp"
#include "pagewire/migration/report.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::migration {

class SourceMigration {
 public:
  // `memory` is what `session` carries: the guest writes only its RAM blocks, and `tracker`
  // reports pages of the memory's page size among them, numbered across the blocks. All
  // referenced objects outlive run(). The hooks are called in the order hooks.hpp gives.
  SourceMigration(transport::SourceSession& session, const MigrationMemory& memory, GuestControl& guest,
                  DirtyTracker& tracker, const MigrationOptions& options);

  // `on_round` after every pre-copy round; `on_progress` (optional) during each round,
  // the final one included. Both run on the calling thread.
  //
  // Ok: the destination verified the image and acknowledged the commit; the guest stays
  // paused here and runs there. An error with any code but kCommitUnknown: the guest runs
  // here as before (resumed, unthrottled) and the destination discarded its image.
  // kCommitUnknown: the COMMIT went out and no answer came; the guest stays paused here,
  // since it may already run on the destination: ask there before resuming it.
  Result<MigrationReport> run(std::span<const std::byte> device_state,
                              const std::function<void(const RoundReport&)>& on_round,
                              const std::function<void(const RoundProgress&)>& on_progress = {});

  // The downtime limit to decide each switchover by, which another thread may change while
  // run() runs (a control channel: QEMU's migrate-set-parameters downtime-limit); read after
  // every round. Null: MigrationOptions::downtime_limit_ms. Set before run().
  void follow_downtime_limit(const std::atomic<std::uint32_t>* limit_ms) { live_downtime_limit_ms_ = limit_ms; }

 private:
  Result<RoundReport> send_round(std::span<const std::uint64_t> pages, std::uint32_t round, std::uint32_t timeout_ms,
                                 transport::SourceSession::RoundPages kind = transport::SourceSession::RoundPages::kMayChange);
  std::uint32_t pre_copy_ms_left() const;
  double refresh_digest();  // between rounds, the session kept alive; returns the hash's seconds
  // `dirty` (ascending) plus the pages sent as COPYs of one of them: they go again, ascending.
  void add_stale_copies(std::vector<std::uint64_t>* dirty) const;
  // Appends what the tracker reports (ascending) to `pages`.
  Status collect_dirty(std::vector<std::uint64_t>* pages);
  Status throttle_more();
  // Ends a failed migration: tells the destination why, and leaves the guest as it was
  // before (unthrottled, running). Returns `why`, said so.
  Error give_up(const Error& why);
  // `pending`: pages dirtied during the last pre-copy round, already taken from the log.
  Result<MigrationReport> switch_over(std::span<const std::byte> device_state, MigrationReport report,
                                      std::vector<std::uint64_t> pending);
  // Postcopy's switch (source_postcopy.cpp): pause, tell the destination what it lacks with
  // the device state, have it run the guest, then push the rest, its requests first.
  Result<MigrationReport> switch_to_postcopy(std::span<const std::byte> device_state, MigrationReport report,
                                             std::vector<std::uint64_t> pending);
  // The device state and the runs of missing pages in the state area; the pages they cover.
  Result<std::vector<std::uint64_t>> write_switch_record(std::span<const std::byte> device_state,
                                                         std::span<const std::uint64_t> pending);
  // `before`: the session's totals before the round began, for the report.
  Result<MigrationReport> push_missing(MigrationReport report, std::span<const std::uint64_t> missing,
                                       const transport::SessionTotals& before, std::future<Digest>& ours_later);
  // After postcopy's switch: the guest ran on the destination, so nothing is resumed here.
  Error lose_guest(const Error& why);

  // Seconds to switch over with `dirty_pages` left at `bytes_per_second`: the transfer, plus
  // rehashing the blocks they touch (marked in digest_) and the verify/commit round trips.
  double expected_downtime_seconds(std::uint64_t dirty_pages, double bytes_per_second) const;

  std::uint32_t downtime_limit_ms() const {
    return live_downtime_limit_ms_ != nullptr ? live_downtime_limit_ms_->load(std::memory_order_relaxed)
                                              : options_.downtime_limit_ms;
  }

  transport::SourceSession& session_;
  const MigrationMemory& memory_;
  const std::atomic<std::uint32_t>* live_downtime_limit_ms_ = nullptr;
  // Kept current between rounds from the dirty log, so the switchover rehashes only the
  // pages the guest wrote since the last round.
  RegionDigest digest_;
  double block_hash_seconds_ = 0;  // measured at start
  std::uint64_t guest_pages_;
  std::uint32_t page_size_;
  GuestControl& guest_;
  DirtyTracker& tracker_;
  DirtyPages dirty_;  // the tracker marks it, collect_dirty() drains it
  MigrationOptions options_;
  double throttle_ = 0;
  bool paused_ = false;
  std::uint32_t generation_ = 0;
  std::chrono::steady_clock::time_point give_up_at_;  // run()'s start + max_seconds
  std::function<void(const RoundProgress&)> on_progress_;
};

}  // namespace pagewire::migration
