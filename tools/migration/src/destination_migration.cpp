#include "pagewire/migration/destination_migration.hpp"

#include <chrono>
#include <cstring>

namespace pagewire::migration {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

DestinationDigest::DestinationDigest(std::span<const std::byte> region, std::uint32_t page_size)
    : region_(region), page_size_(page_size), blocks_(region) {
  blocks_.refresh();
}

void DestinationDigest::pages_written(std::uint64_t first_page, std::uint32_t count) noexcept {
  blocks_.rehash_pages(first_page, count, page_size_);
}

DestinationMigration::DestinationMigration(transport::DestinationSession& session, const DestinationDigest& digest,
                                           std::uint64_t guest_pages)
    : session_(session), digest_(digest), guest_pages_(guest_pages) {}

Result<std::vector<std::byte>> DestinationMigration::device_state() const {
  const std::span<const std::byte> region = digest_.region();
  const std::uint64_t guest_bytes = guest_pages_ * digest_.page_size();
  std::uint64_t length = 0;
  if (guest_bytes + sizeof length > region.size()) {
    return make_error(ErrorCode::kConfiguration, "the region has no room for device state after " +
                                                     std::to_string(guest_pages_) + " guest pages");
  }
  const std::byte* state = region.data() + guest_bytes;
  std::memcpy(&length, state, sizeof length);
  const std::uint64_t capacity = region.size() - guest_bytes - sizeof length;
  if (length > capacity) {
    return make_error(ErrorCode::kVerification, "device state claims " + std::to_string(length) +
                                                    " bytes; at most " + std::to_string(capacity) + " fit");
  }
  return std::vector<std::byte>(state + sizeof length, state + sizeof length + length);
}

void DestinationMigration::refuse(const std::string& reason) {
  session_.refuse_commit(reason);
  session_.linger_until_closed();  // a source that missed the refusal asks again, and hears it again
}

Result<ReceiveReport> DestinationMigration::run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms) {
  if (auto finished = session_.run_until_finished(); !finished) return finished.error();
  ReceiveReport report;
  const auto fin = Clock::now();
  const Digest ours = digest_.digest();  // the stream cores kept every block current
  const auto waiting = Clock::now();
  report.digest_ms = std::chrono::duration<double, std::milli>(waiting - fin).count();
  if (auto status = session_.await_commit(ours, digest_.region().size(), commit_timeout_ms); !status) {
    return status.error();
  }
  report.commit_wait_ms = ms_since(waiting);
  report.digest = to_hex(ours);
  auto state = device_state();
  if (!state) {
    refuse(state.error().message);
    return state.error();
  }
  report.device_state = std::move(state).value();
  const auto hook_start = Clock::now();
  if (on_commit) {
    const CommittedImage image{.guest_memory = digest_.region().first(guest_pages_ * digest_.page_size()),
                               .device_state = report.device_state,
                               .digest = report.digest};
    if (Status taken = on_commit(image); !taken) {
      refuse("the destination's commit hook failed: " + taken.error().message);
      return make_error(ErrorCode::kHook, "commit hook: " + taken.error().message +
                                              "; the commit was refused and the guest keeps running on the source");
    }
  }
  report.commit_hook_ms = ms_since(hook_start);
  session_.acknowledge_commit();
  session_.linger_until_closed();
  return report;
}

}  // namespace pagewire::migration
