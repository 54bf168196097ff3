#include "pagewire/migration/destination_migration.hpp"

#include <chrono>
#include <cstring>

#include "postcopy_pages.hpp"
#include "switch_record.hpp"

namespace pagewire::migration {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

DestinationDigest::DestinationDigest(const MigrationMemory& memory) : memory_(memory), blocks_(memory.pages()) {
  blocks_.refresh();
}

void DestinationDigest::pages_written(std::uint64_t first_page, std::uint32_t count) noexcept {
  blocks_.rehash_pages(first_page, count, memory_.page_size());
}

void DestinationDigest::pages_arrived(std::uint64_t first_page, std::uint32_t count, const std::byte* bytes) noexcept {
  if (placement_ != nullptr) placement_->place(first_page, count, bytes);
  blocks_.rehash_pages_as(bytes, first_page, count, memory_.page_size());
}

DestinationMigration::DestinationMigration(transport::DestinationSession& session, DestinationDigest& digest)
    : session_(session), digest_(digest) {}

// The stream cores are parked by now (run() ends in a linger that stops them): nothing
// places a page through what goes here.
DestinationMigration::~DestinationMigration() { digest_.place_through(nullptr); }

void DestinationMigration::refuse(const std::string& reason) {
  session_.refuse_commit(reason);
  session_.linger_until_closed();  // a source that missed the refusal asks again, and hears it again
}

Result<ReceiveReport> DestinationMigration::run(const CommitHook& on_commit, std::uint32_t commit_timeout_ms,
                                                const PostcopyStartHook& on_postcopy_start) {
  if (auto finished = session_.run_until_finished(); !finished) return finished.error();
  ReceiveReport report;
  if (session_.postcopy_requested()) {
    auto postcopy = run_postcopy(on_postcopy_start);
    if (!postcopy) return postcopy.error();
    report.postcopy = *postcopy;
  }
  const auto fin = Clock::now();
  const Digest ours = digest_.digest();  // the stream cores kept every block current
  const auto waiting = Clock::now();
  report.digest_ms = std::chrono::duration<double, std::milli>(waiting - fin).count();
  if (auto status = session_.await_commit(ours, digest_.memory().bytes(), commit_timeout_ms); !status) {
    return status.error();
  }
  report.commit_wait_ms = ms_since(waiting);
  report.digest = to_hex(ours);
  auto state = read_device_state(digest_.memory().state_area());
  if (!state) {
    refuse(state.error().message);
    return state.error();
  }
  report.device_state = std::move(state).value();
  const auto hook_start = Clock::now();
  if (on_commit) {
    const CommittedImage image{.ram = digest_.memory().ram(),
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
