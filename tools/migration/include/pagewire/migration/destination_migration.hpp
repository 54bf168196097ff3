// Live migration over a pagewire session, the destination's half: applies rounds until the
// source's FIN, answers VERIFY with its digest, and on COMMIT hands the image to the
// embedder's commit hook before it acknowledges, so that the source reports success only
// once the guest is the destination's.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pagewire/migration/digest.hpp"
#include "pagewire/migration/hooks.hpp"
#include "pagewire/migration/migration_memory.hpp"
#include "pagewire/migration/report.hpp"
#include "pagewire/result.hpp"
#include "pagewire/transport/applied_pages.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::migration {

class PostcopyPages;

// The destination's digest, kept by its stream cores: each rehashes the pages it writes
// while they are still in its cache (transport::AppliedPagesObserver: set it as the
// session's SessionConfig::applied_pages before accept()). At the FIN it is already current,
// so the switchover waits for no hashing, however far a hashing thread would have fallen
// behind on a machine whose cores are all polling.
class DestinationDigest final : public transport::AppliedPagesObserver {
 public:
  // Hashes the whole of `memory` as it is now: what holds until pages arrive. `memory`
  // outlives this digest.
  explicit DestinationDigest(const MigrationMemory& memory);
  // On a stream core (transport's contract): rehashes those pages' blocks.
  void pages_written(std::uint64_t first_page, std::uint32_t count) noexcept override;
  // Postcopy, on a stream core: places the pages into the guest (place_through) and hashes
  // them as they arrived, not as the guest changes them afterwards.
  void pages_arrived(std::uint64_t first_page, std::uint32_t count, const std::byte* bytes) noexcept override;
  // Once the streams have stopped (run_until_finished() returned): the region's digest.
  Digest digest() const { return blocks_.digest(); }
  const MigrationMemory& memory() const { return memory_; }
  // Postcopy, while the streams are parked: where pages_arrived() puts pages (null: none).
  void place_through(PostcopyPages* placement) { placement_ = placement; }

 private:
  const MigrationMemory& memory_;
  RegionDigest blocks_;
  PostcopyPages* placement_ = nullptr;
};

class DestinationMigration {
 public:
  // `digest` is the session's SessionConfig::applied_pages, over the memory the session
  // writes. Both outlive run().
  DestinationMigration(transport::DestinationSession& session, DestinationDigest& digest);
  ~DestinationMigration();

  // Rounds take as long as the source keeps sending (run_until_finished); the source must
  // COMMIT within `commit_timeout_ms` of its FIN. `on_commit` (may be empty) runs on this
  // thread before the COMMIT is acknowledged (hooks.hpp). Should the source switch to
  // postcopy, `on_postcopy_start` starts the guest here first (empty: the switch is refused
  // and the source resumes its guest). Ok: the guest is ours and the source was told. Any
  // error: discard the image; the guest runs on the source, except kGuestLost (postcopy
  // failed after the start hook ran: stop the guest here, it lacks pages for good).
  Result<ReceiveReport> run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms,
                            const PostcopyStartHook& on_postcopy_start = {});

 private:
  void refuse(const std::string& reason);  // the commit, and stays to say so again
  // The source asked to switch: arm the missing pages, start the guest, receive the rest.
  Result<PostcopyReceiveReport> run_postcopy(const PostcopyStartHook& on_start);
  // Refuses the switch (the source resumes its guest) and returns why.
  Error refuse_postcopy(const Error& why);
  Status start_postcopy(const PostcopyStartHook& on_start, PostcopyReceiveReport* report);

  transport::DestinationSession& session_;
  DestinationDigest& digest_;
  std::unique_ptr<PostcopyPages> postcopy_;
};

}  // namespace pagewire::migration
