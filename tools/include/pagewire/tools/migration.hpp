// Live migration over a pagewire session: iterative pre-copy while the guest keeps writing,
// then a short switchover. The orchestration is a library; the CLI is one client of it and a
// hypervisor prototype can be another, with its own memory and dirty log.
//
// The region a session carries is the guest's pages followed by `state_pages` pages that hold
// the device state (an opaque blob, e.g. CPU and device registers, length-prefixed), sent
// with the final round. A migration succeeds only when the destination's digest of the
// whole region equals the source's and the destination confirms the commit; until then the
// source guest keeps running (or is resumed), as a failed vMotion leaves the VM on its host.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "pagewire/pagecodec/record.hpp"
#include "pagewire/result.hpp"
#include "pagewire/tools/digest.hpp"
#include "pagewire/tools/guest_model.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::tools {

struct MigrationOptions {
  std::uint32_t downtime_limit_ms = 300;  // QEMU's default
  // The rate the final round is expected to go at, for the switchover decision (as QEMU's
  // avail-switchover-bandwidth). 0: the last round's measured rate for pages with content.
  double switchover_gbps = 0;
  std::uint32_t max_rounds = 30;
  // Past this the migration aborts, mid-round too: a round has no limit of its own, since a
  // large guest's first round alone can take minutes. The switchover, once begun, runs on.
  std::uint32_t max_seconds = 600;
  // Rounds that shrink the dirty set by less than 10% twice in a row are not converging:
  // auto-converge throttles the guest (20%, then +10% a step, as QEMU's cpu-throttle does);
  // without it the migration switches over anyway and takes the longer downtime.
  bool auto_converge = true;
  double throttle_first = 0.2;
  double throttle_step = 0.1;
  double throttle_max = 0.95;
  std::uint32_t verify_timeout_ms = 10000;
};

// Pages needed after the guest's to carry a device-state blob of up to `max_state_bytes`.
std::uint64_t state_pages_for(std::uint64_t max_state_bytes, std::uint32_t page_size);

struct RoundReport {
  std::uint32_t round = 0;
  std::uint64_t pages = 0;
  std::uint64_t wire_bytes = 0;          // record bytes put in frames this round
  double seconds = 0;
  double guest_gbps = 0;                 // guest bytes moved per second
  double dirty_pages_per_second = 0;     // measured over the round
  std::uint64_t dirty_pages = 0;         // dirtied during the round: the next round's work
  double throttle = 0;
  std::array<std::uint64_t, pagecodec::kEncodingCount> pages_by_encoding{};
};

// Where the current round is, about every 100 ms.
struct RoundProgress {
  std::uint32_t round = 0;
  std::uint64_t pages_done = 0;   // encoded and handed to the streams
  std::uint64_t pages = 0;        // in this round
  double seconds = 0;             // since the round began
};

struct MigrationReport {
  bool verified = false;
  std::string digest;
  double expected_downtime_ms = 0;  // what the switchover decision predicted
  // Where the downtime went: final round, FIN of every stream, digest exchange, commit.
  // pause: stopping the guest and collecting what it wrote since the last round.
  double pause_ms = 0, final_round_ms = 0, finish_ms = 0, verify_ms = 0, commit_ms = 0;
  double total_seconds = 0;
  double downtime_ms = 0;   // guest paused -> destination confirmed
  std::uint32_t rounds = 0;
  std::uint64_t guest_pages = 0;
  std::uint64_t pages_sent = 0;
  std::uint64_t wire_bytes = 0;
  double final_throttle = 0;
  std::array<std::uint64_t, pagecodec::kEncodingCount> pages_by_encoding{};
};

class SourceMigration {
 public:
  // `region` holds guest_pages + state_pages pages; the guest model writes only the first
  // guest_pages. All referenced objects outlive run().
  SourceMigration(transport::SourceSession& session, std::span<std::byte> region, std::uint64_t guest_pages,
                  std::uint32_t page_size, GuestModel& guest, DirtyLog& log, const MigrationOptions& options);

  // `on_round` after every pre-copy round; `on_progress` (optional) during each round,
  // the final one included. Both run on the calling thread.
  Result<MigrationReport> run(std::span<const std::byte> device_state,
                              const std::function<void(const RoundReport&)>& on_round,
                              const std::function<void(const RoundProgress&)>& on_progress = {});

 private:
  Result<RoundReport> send_round(std::span<const std::uint64_t> pages, std::uint32_t round, std::uint32_t timeout_ms,
                                 transport::SourceSession::RoundPages kind = transport::SourceSession::RoundPages::kMayChange);
  std::uint32_t pre_copy_ms_left() const;
  double refresh_digest();  // between rounds, the session kept alive; returns the hash's seconds
  // `dirty` (ascending) plus the pages sent as COPYs of one of them: they go again, ascending.
  void add_stale_copies(std::vector<std::uint64_t>* dirty) const;
  // `pending`: pages dirtied during the last pre-copy round, already taken from the log.
  Result<MigrationReport> switch_over(std::span<const std::byte> device_state, MigrationReport report,
                                      std::vector<std::uint64_t> pending);

  // Seconds to switch over with `dirty_pages` left at `bytes_per_second`: the transfer, plus
  // rehashing the blocks they touch (marked in digest_) and the verify/commit round trips.
  double expected_downtime_seconds(std::uint64_t dirty_pages, double bytes_per_second) const;

  transport::SourceSession& session_;
  std::span<std::byte> region_;
  // Kept current between rounds from the dirty log, so the switchover rehashes only the
  // pages the guest wrote since the last round.
  RegionDigest digest_;
  double block_hash_seconds_ = 0;  // measured at start
  std::uint64_t guest_pages_;
  std::uint32_t page_size_;
  GuestModel& guest_;
  DirtyLog& log_;
  MigrationOptions options_;
  std::uint32_t generation_ = 0;
  std::chrono::steady_clock::time_point give_up_at_;  // run()'s start + max_seconds
  std::function<void(const RoundProgress&)> on_progress_;
};

// The destination's digest, kept by its stream cores: each rehashes the pages it writes
// while they are still in its cache (transport::AppliedPagesObserver: set it as the
// session's SessionConfig::applied_pages before accept()). At the FIN it is already current,
// so the switchover waits for no hashing, however far a hashing thread would have fallen
// behind on a machine whose cores are all polling.
class DestinationDigest final : public transport::AppliedPagesObserver {
 public:
  // Hashes the whole region as it is now: what holds until pages arrive.
  DestinationDigest(std::span<const std::byte> region, std::uint32_t page_size);
  // On a stream core (transport's contract): rehashes those pages' blocks.
  void pages_written(std::uint64_t first_page, std::uint32_t count) noexcept override;
  // Once the streams have stopped (run_until_finished() returned): the region's digest.
  Digest digest() const { return blocks_.digest(); }
  std::span<const std::byte> region() const { return region_; }
  std::uint32_t page_size() const { return page_size_; }

 private:
  std::span<const std::byte> region_;
  std::uint32_t page_size_;
  RegionDigest blocks_;
};

struct ReceiveReport {
  std::string digest;
  double digest_ms = 0;       // from the FIN to the digest: combining the block digests
  double commit_wait_ms = 0;  // from the digest to the source's COMMIT
  std::vector<std::byte> device_state;
};

// The destination's half: applies rounds until the source's FIN, answers VERIFY with its
// digest, and succeeds only when the source commits within `commit_timeout_ms` of the FIN.
// Rounds take as long as the source keeps sending (run_until_finished). `digest` is the
// session's SessionConfig::applied_pages. Any failure means: discard the image.
Result<ReceiveReport> receive_migration(transport::DestinationSession& session, const DestinationDigest& digest,
                                        std::uint64_t guest_pages, std::uint32_t commit_timeout_ms);

}  // namespace pagewire::tools
