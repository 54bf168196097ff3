#include "pagewire/migration/destination.hpp"

#include "pagewire/migration/internal/session_parts.hpp"
#include "pagewire/pagecodec/policy.hpp"

namespace pagewire::migration {

Result<Destination> Destination::accept(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                                        std::uint32_t page_size) {
  if (!pagecodec::is_valid_page_size(page_size)) {
    return make_error(ErrorCode::kConfiguration,
                      "page size " + std::to_string(page_size) + ": expected a power of two from 4096 to 65536");
  }
  if (guest_pages == 0 || memory.size() % page_size != 0 || memory.size() / page_size <= guest_pages) {
    return make_error(ErrorCode::kConfiguration, "memory of " + std::to_string(memory.size()) + " bytes: expected " +
                                                     std::to_string(guest_pages) + " guest pages and state pages");
  }
  auto parts = std::make_unique<Parts>();
  parts->guest_pages = guest_pages;
  // The region's digest before any page arrives; the stream cores keep it current.
  parts->digest = std::make_unique<DestinationDigest>(memory, page_size);
  transport::SessionConfig config = link.parts().session;
  config.page_size = page_size;
  config.region_pages = memory.size() / page_size;
  config.applied_pages = parts->digest.get();
  auto session = transport::DestinationSession::accept(config, *link.parts().port, memory.data());
  if (!session) return session.error();
  parts->session = std::move(session).value();
  return Destination(std::move(parts));
}

Destination::Destination(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Destination::Destination(Destination&& other) noexcept = default;
Destination& Destination::operator=(Destination&& other) noexcept = default;
Destination::~Destination() = default;

Result<ReceiveReport> Destination::run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms) {
  return DestinationMigration(*parts_->session, *parts_->digest, parts_->guest_pages).run(on_commit, commit_timeout_ms);
}

void Destination::cancel(std::string_view reason) { parts_->session->cancel(reason); }

std::uint16_t Destination::streams() const { return parts_->session->streams(); }

}  // namespace pagewire::migration
