// Inside a Source or Destination: the transport sessions, for the CLI's reports and for
// tuning beyond SourceOptions. Not installed: it brings in DPDK's headers.
#pragma once

#include <atomic>
#include <memory>
#include <span>

#include "pagewire/migration/destination.hpp"
#include "pagewire/migration/destination_migration.hpp"
#include "pagewire/migration/internal/link_parts.hpp"
#include "pagewire/migration/migration_memory.hpp"
#include "pagewire/migration/source.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::migration {

struct Source::Parts {
  explicit Parts(MigrationMemory laid_out) : memory(std::move(laid_out)) {}
  MigrationMemory memory;  // the session reads it
  std::unique_ptr<transport::SourceSession> session;
  MigrationOptions options;
  std::atomic<std::uint32_t> downtime_limit_ms{0};  // set_downtime_limit_ms, followed by run()
};

struct Destination::Parts {
  MigrationMemory memory;  // the session writes it, the digest reads it
  std::unique_ptr<DestinationDigest> digest;  // before the session: its observer
  std::unique_ptr<transport::DestinationSession> session;
};

// Source::connect with a session configuration the caller filled in (the CLI's tuning
// options): `config` from the link's, with every field the caller wants.
Result<Source> connect_source(Link& link, MigrationMemory memory, transport::SessionConfig config,
                              const MigrationOptions& options);

}  // namespace pagewire::migration
