// Live migration over a pagewire session, the destination's half: applies rounds until the
// source's FIN, answers VERIFY with its digest, and on COMMIT hands the image to the
// embedder's commit hook before it acknowledges, so that the source reports success only
// once the guest is the destination's.
#pragma once

#include <cstdint>
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
  // Once the streams have stopped (run_until_finished() returned): the region's digest.
  Digest digest() const { return blocks_.digest(); }
  const MigrationMemory& memory() const { return memory_; }

 private:
  const MigrationMemory& memory_;
  RegionDigest blocks_;
};

class DestinationMigration {
 public:
  // `digest` is the session's SessionConfig::applied_pages, over the memory the session
  // writes. Both outlive run().
  DestinationMigration(transport::DestinationSession& session, const DestinationDigest& digest);

  // Rounds take as long as the source keeps sending (run_until_finished); the source must
  // COMMIT within `commit_timeout_ms` of its FIN. `on_commit` (may be empty) runs on this
  // thread before the COMMIT is acknowledged (hooks.hpp). Ok: the guest is ours and the
  // source was told. Any error: discard the image; the guest runs on the source.
  Result<ReceiveReport> run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms);

 private:
  void refuse(const std::string& reason);  // the commit, and stays to say so again
  // The device state the source put after the guest's pages, length first; checked.
  Result<std::vector<std::byte>> device_state() const;

  transport::DestinationSession& session_;
  const DestinationDigest& digest_;
};

}  // namespace pagewire::migration
