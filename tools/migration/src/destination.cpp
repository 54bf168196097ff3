#include "pagewire/migration/destination.hpp"

#include "pagewire/migration/internal/session_parts.hpp"

namespace pagewire::migration {

namespace {

Result<Destination> accept_into(Link& link, MigrationMemory memory) {
  auto parts = std::make_unique<Destination::Parts>(Destination::Parts{.memory = std::move(memory), .digest = {}, .session = {}});
  // The memory's digest before any page arrives; the stream cores keep it current.
  parts->digest = std::make_unique<DestinationDigest>(parts->memory);
  transport::SessionConfig config = link.parts().session;
  config.page_size = parts->memory.page_size();
  config.region_pages = parts->memory.pages().pages();
  config.applied_pages = parts->digest.get();
  auto session = transport::DestinationSession::accept(config, *link.parts().port, parts->memory.pages());
  if (!session) return session.error();
  parts->session = std::move(session).value();
  return Destination(std::move(parts));
}

}  // namespace

Result<Destination> Destination::accept(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                                        std::uint32_t page_size) {
  auto laid_out = MigrationMemory::contiguous(memory, guest_pages, page_size);
  if (!laid_out) return laid_out.error();
  return accept_into(link, std::move(laid_out).value());
}

Result<Destination> Destination::accept(Link& link, std::span<const RamBlock> ram, std::span<std::byte> state_area,
                                        std::uint32_t page_size) {
  auto laid_out = MigrationMemory::create(ram, state_area, page_size);
  if (!laid_out) return laid_out.error();
  return accept_into(link, std::move(laid_out).value());
}

Destination::Destination(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Destination::Destination(Destination&& other) noexcept = default;
Destination& Destination::operator=(Destination&& other) noexcept = default;
Destination::~Destination() = default;

Result<ReceiveReport> Destination::run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms,
                                       const PostcopyStartHook& on_postcopy_start) {
  return DestinationMigration(*parts_->session, *parts_->digest).run(on_commit, commit_timeout_ms, on_postcopy_start);
}

void Destination::cancel(std::string_view reason) { parts_->session->cancel(reason); }

std::uint16_t Destination::streams() const { return parts_->session->streams(); }

}  // namespace pagewire::migration
