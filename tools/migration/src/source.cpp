#include "pagewire/migration/source.hpp"

#include "pagewire/migration/internal/session_parts.hpp"
#include "pagewire/migration/source_migration.hpp"
#include "pagewire/pagecodec/policy.hpp"

namespace pagewire::migration {

Result<Source> connect_source(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                              transport::SessionConfig config, const MigrationOptions& options) {
  if (!pagecodec::is_valid_page_size(config.page_size)) {
    return make_error(ErrorCode::kConfiguration, "page size " + std::to_string(config.page_size) +
                                                     ": expected a power of two from 4096 to 65536");
  }
  if (guest_pages == 0 || memory.size() % config.page_size != 0 || memory.size() / config.page_size <= guest_pages) {
    return make_error(ErrorCode::kConfiguration,
                      "memory of " + std::to_string(memory.size()) + " bytes: expected " + std::to_string(guest_pages) +
                          " guest pages of " + std::to_string(config.page_size) +
                          " bytes and at least one page for the device state (state_pages_for)");
  }
  config.region_pages = memory.size() / config.page_size;
  auto session = transport::SourceSession::connect(config, *link.parts().port, memory.data());
  if (!session) return session.error();
  auto parts = std::make_unique<Source::Parts>();
  parts->session = std::move(session).value();
  parts->memory = memory;
  parts->guest_pages = guest_pages;
  parts->page_size = config.page_size;
  parts->options = options;
  return Source(std::move(parts));
}

Result<Source> Source::connect(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                               std::uint32_t page_size, const SourceOptions& options) {
  transport::SessionConfig config = link.parts().session;
  config.page_size = page_size;
  auto policy = pagecodec::policy_named(options.policy);
  if (!policy) return make_error(ErrorCode::kConfiguration, "policy: " + policy.error().message);
  config.policy = *policy;
  if (options.max_gbps < 0) return make_error(ErrorCode::kConfiguration, "max_gbps: expected 0 (no cap) or more");
  config.tuning.rate_bytes_per_second = options.max_gbps * 1e9 / 8 / config.streams;  // per stream
  config.delta_cache_bytes = options.delta_cache_bytes;
  return connect_source(link, memory, guest_pages, std::move(config), options.migration);
}

Source::Source(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Source::Source(Source&& other) noexcept = default;
Source& Source::operator=(Source&& other) noexcept = default;
Source::~Source() = default;

Result<MigrationReport> Source::run(GuestControl& guest, DirtyTracker& tracker, std::span<const std::byte> device_state,
                                    const std::function<void(const RoundReport&)>& on_round,
                                    const std::function<void(const RoundProgress&)>& on_progress) {
  SourceMigration migration(*parts_->session, parts_->memory, parts_->guest_pages, parts_->page_size, guest, tracker,
                            parts_->options);
  return migration.run(device_state, on_round, on_progress);
}

void Source::cancel(std::string_view reason) { parts_->session->cancel(reason); }

std::uint16_t Source::path_mtu() const { return parts_->session->path_mtu(); }
std::uint16_t Source::streams() const { return parts_->session->streams(); }

}  // namespace pagewire::migration
