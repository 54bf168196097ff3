#include "pagewire/migration/source.hpp"
#include "pagewire/transport/outcome_query.hpp"
#include "pagewire/transport/outcome_query.hpp"

#include "pagewire/migration/internal/session_parts.hpp"
#include "pagewire/migration/source_migration.hpp"
#include "pagewire/pagecodec/policy.hpp"

#include <algorithm>

namespace pagewire::migration {

namespace {

Result<transport::SessionConfig> session_config(Link& link, std::uint32_t page_size, const SourceOptions& options) {
  transport::SessionConfig config = link.parts().session;
  config.page_size = page_size;
  auto policy = pagecodec::policy_named(options.policy);
  if (!policy) return make_error(ErrorCode::kConfiguration, "policy: " + policy.error().message);
  config.policy = *policy;
  if (options.max_gbps < 0) return make_error(ErrorCode::kConfiguration, "max_gbps: expected 0 (no cap) or more");
  config.tuning.rate_bytes_per_second = options.max_gbps * 1e9 / 8 / config.streams;  // per stream
  config.delta_cache_bytes = options.delta_cache_bytes;
  return config;
}

}  // namespace

Result<Source> connect_source(Link& link, MigrationMemory memory, transport::SessionConfig config,
                              const MigrationOptions& options) {
  if (config.page_size != memory.page_size()) {
    return make_error(ErrorCode::kConfiguration, "page size " + std::to_string(config.page_size) +
                                                     ": the memory was laid out in pages of " +
                                                     std::to_string(memory.page_size()));
  }
  config.region_pages = memory.pages().pages();
  auto parts = std::make_unique<Source::Parts>(std::move(memory));
  parts->options = options;
  parts->downtime_limit_ms.store(options.downtime_limit_ms);
  auto session = transport::SourceSession::connect(config, *link.parts().port, parts->memory.pages());
  if (!session) return session.error();
  parts->session = std::move(session).value();
  return Source(std::move(parts));
}

namespace {

Result<Source> connect_laid_out(Link& link, Result<MigrationMemory> laid_out, const SourceOptions& options) {
  if (!laid_out) return laid_out.error();
  auto config = session_config(link, laid_out->page_size(), options);
  if (!config) return config.error();
  return connect_source(link, std::move(laid_out).value(), std::move(config).value(), options.migration);
}

}  // namespace

Result<Source> Source::connect(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                               std::uint32_t page_size, const SourceOptions& options) {
  return connect_laid_out(link, MigrationMemory::contiguous(memory, guest_pages, page_size), options);
}

Result<Source> Source::connect(Link& link, std::span<const RamBlock> ram, std::span<std::byte> state_area,
                               std::uint32_t page_size, const SourceOptions& options) {
  return connect_laid_out(link, MigrationMemory::create(ram, state_area, page_size), options);
}

Source::Source(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Source::Source(Source&& other) noexcept = default;
Source& Source::operator=(Source&& other) noexcept = default;
Source::~Source() = default;

Result<MigrationReport> Source::run(GuestControl& guest, DirtyTracker& tracker, std::span<const std::byte> device_state,
                                    const std::function<void(const RoundReport&)>& on_round,
                                    const std::function<void(const RoundProgress&)>& on_progress) {
  SourceMigration migration(*parts_->session, parts_->memory, guest, tracker, parts_->options);
  migration.follow_downtime_limit(&parts_->downtime_limit_ms);
  return migration.run(device_state, on_round, on_progress);
}

void Source::cancel(std::string_view reason) { parts_->session->cancel(reason); }

void Source::set_max_gbps(double gbps) { parts_->session->set_rate_cap(std::max(gbps, 0.0) * 1e9 / 8); }
double Source::max_gbps() const { return parts_->session->rate_cap() * 8 / 1e9; }
void Source::set_downtime_limit_ms(std::uint32_t limit_ms) { parts_->downtime_limit_ms.store(limit_ms); }
std::uint32_t Source::downtime_limit_ms() const { return parts_->downtime_limit_ms.load(); }

std::uint16_t Source::path_mtu() const { return parts_->session->path_mtu(); }
std::uint16_t Source::streams() const { return parts_->session->streams(); }
std::uint32_t Source::session_id() const { return parts_->session->session_id(); }

// The wire's values (transport::CommitOutcome, docs/protocol.md) are the API's.
static_assert(static_cast<int>(CommitOutcome::kCommitted) == static_cast<int>(transport::CommitOutcome::kCommitted) &&
              static_cast<int>(CommitOutcome::kNotCommitted) == static_cast<int>(transport::CommitOutcome::kNotCommitted) &&
              static_cast<int>(CommitOutcome::kPending) == static_cast<int>(transport::CommitOutcome::kPending) &&
              static_cast<int>(CommitOutcome::kUnknown) == static_cast<int>(transport::CommitOutcome::kUnknown));

Result<CommitOutcome> query_commit_outcome(Link& link, std::uint32_t session, std::uint32_t timeout_ms) {
  auto answered = transport::query_outcome(link.parts().session, *link.parts().port, session, timeout_ms);
  if (!answered) return answered.error();
  return static_cast<CommitOutcome>(*answered);
}

const char* to_string(CommitOutcome outcome) { return transport::to_string(static_cast<transport::CommitOutcome>(outcome)); }

}  // namespace pagewire::migration
