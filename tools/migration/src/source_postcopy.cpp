// SourceMigration's postcopy: the switch (pause, the device state and the runs of missing
// pages in the state area, the destination told to run the guest) and the push of the rest,
// the pages its guest touches first, then verify and commit as after pre-copy.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "pagewire/migration/source_migration.hpp"
#include "switch_record.hpp"

namespace pagewire::migration {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

// Before the guest runs on the destination, a phase gets what switch_over's get.
constexpr std::uint32_t kSwitchPhaseLimitMs = 60000;
// After it, the push runs as long as pages are acknowledged: only silence (the peer timeout,
// or the resume window, since the guest runs) ends it.
constexpr std::uint32_t kPushLimitMs = 24u * 3600 * 1000;

}  // namespace

Error SourceMigration::lose_guest(const Error& why) {
  session_.abort(why.message);
  tracker_.stop();
  return Error{"postcopy failed after the switch: " + why.message +
                   "; the guest ran on the destination, which lacks pages: neither end holds the whole guest",
               ErrorCode::kGuestLost};
}

Result<std::vector<std::uint64_t>> SourceMigration::write_switch_record(std::span<const std::byte> device_state,
                                                                        std::span<const std::uint64_t> pending) {
  const std::size_t room = runs_that_fit(memory_.state_area().size(), device_state.size());
  if (room == 0) {
    return make_error(ErrorCode::kConfiguration, "the state area of " + std::to_string(memory_.state_area().size()) +
                                                     " bytes has no room after the device state for the list of "
                                                     "missing pages (state_pages_for a larger maximum)");
  }
  // Pages beyond the guest's (state pages) are not the destination's to fault on.
  const auto guest_end = std::lower_bound(pending.begin(), pending.end(), guest_pages_);
  const std::vector<PageRun> runs =
      runs_covering(std::span(pending.begin(), guest_end), room);
  migration::write_switch_record(memory_.state_area(), device_state, runs);
  return pages_of(runs);
}

Result<MigrationReport> SourceMigration::switch_to_postcopy(std::span<const std::byte> device_state,
                                                            MigrationReport report, std::vector<std::uint64_t> pages) {
  const auto paused_at = Clock::now();
  paused_ = true;
  session_.set_guest_running(false);
  if (Status stopped = guest_.pause(); !stopped) {
    return give_up(make_error(ErrorCode::kHook, "guest pause: " + stopped.error().message));
  }
  auto fail = [&](const Error& why) -> Result<MigrationReport> { return give_up(in_context("postcopy switch: ", why)); };
  if (Status collected = collect_dirty(&pages); !collected) return fail(collected.error());
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  add_stale_copies(&pages);
  auto missing = write_switch_record(device_state, pages);
  if (!missing) return fail(missing.error());
  std::vector<std::uint64_t> state_pages(memory_.state_pages());
  std::iota(state_pages.begin(), state_pages.end(), guest_pages_);
  digest_.mark_pages(*missing, page_size_);
  digest_.mark_pages(state_pages, page_size_);
  report.pause_ms = ms_since(paused_at);
  auto sent = send_round(state_pages, report.rounds, kSwitchPhaseLimitMs, transport::SourceSession::RoundPages::kStable);
  if (!sent) return fail(sent.error());
  report.rounds += 1;
  report.pages_sent += sent->pages;
  report.wire_bytes += sent->wire_bytes;
  // The round first: the guest may run there, and ask, before the answer reaches us.
  const transport::SessionTotals before_push = session_.totals();
  session_.begin_postcopy_round(*missing, ++generation_);
  if (Status switched = session_.switch_to_postcopy(options_.commit_timeout_ms); !switched) {
    if (switched.error().code != ErrorCode::kCommitUnknown) return fail(switched.error());
    tracker_.stop();  // it may run there: resuming here could leave two running
    return in_context("postcopy switch: ", Error{switched.error().message + "; the guest stays paused on the source "
                                                 "until the destination's outcome is known", ErrorCode::kCommitUnknown});
  }
  report.downtime_ms = ms_since(paused_at);
  report.postcopy = true;
  report.postcopy_pages = missing->size();
  // The paused region's digest, what the destination must end with: hashed while the rest
  // goes out, not while the guest waits to run there (a GiB takes 0.1-0.25 s of a CPU).
  std::future<Digest> ours_later = std::async(std::launch::async, [this] {
    digest_.refresh();
    return digest_.digest();
  });
  return push_missing(std::move(report), *missing, before_push, ours_later);
}

Result<MigrationReport> SourceMigration::push_missing(MigrationReport report, std::span<const std::uint64_t> missing,
                                                      const transport::SessionTotals& before,
                                                      std::future<Digest>& ours_later) {
  tracker_.stop();
  session_.set_guest_running(true);  // on the destination: an outage is ridden out for the resume window
  const auto switched_at = Clock::now();
  if (Status pushed = session_.run_until_idle(kPushLimitMs); !pushed) return lose_guest(pushed.error());
  report.postcopy_pages_ms = ms_since(switched_at);
  const transport::SessionTotals after = session_.totals();
  report.pages_requested = after.streams.pages_requested_sent - before.streams.pages_requested_sent;
  report.rounds += 1;
  report.pages_sent += missing.size();
  report.wire_bytes += after.encoded.output_bytes - before.encoded.output_bytes;
  for (int e = 0; e < pagecodec::kEncodingCount; ++e) {
    report.pages_by_encoding[e] += after.encoded.pages[e] - before.encoded.pages[e];
  }
  session_.begin_finish();
  if (Status finished = session_.run_until_idle(kSwitchPhaseLimitMs); !finished) return lose_guest(finished.error());
  auto theirs = session_.verify(options_.verify_timeout_ms);
  const Digest ours = ours_later.get();
  if (!theirs) return lose_guest(theirs.error());
  if (*theirs != ours) {
    return lose_guest(make_error(ErrorCode::kVerification,
                                 "digest mismatch: destination " + to_hex(*theirs) + ", source " + to_hex(ours)));
  }
  if (Status committed = session_.commit(options_.commit_timeout_ms); !committed) return lose_guest(committed.error());
  report.verified = true;
  report.digest = to_hex(ours);
  return report;
}

}  // namespace pagewire::migration
