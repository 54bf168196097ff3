// Inside a Source or Destination: the transport sessions, for the CLI's reports and for
// tuning beyond SourceOptions. Not installed: it brings in DPDK's headers.
#pragma once

#include <memory>
#include <span>

#include "pagewire/migration/destination.hpp"
#include "pagewire/migration/destination_migration.hpp"
#include "pagewire/migration/internal/link_parts.hpp"
#include "pagewire/migration/source.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::migration {

struct Source::Parts {
  std::unique_ptr<transport::SourceSession> session;
  std::span<std::byte> memory;
  std::uint64_t guest_pages = 0;
  std::uint32_t page_size = 0;
  MigrationOptions options;
};

struct Destination::Parts {
  std::unique_ptr<DestinationDigest> digest;  // before the session: its observer
  std::unique_ptr<transport::DestinationSession> session;
  std::uint64_t guest_pages = 0;
};

// Source::connect with a session configuration the caller filled in (the CLI's tuning
// options): `config` from the link's, with every field the caller wants.
Result<Source> connect_source(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                              transport::SessionConfig config, const MigrationOptions& options);

}  // namespace pagewire::migration
