// DestinationMigration's postcopy: at the source's request, the pages this end lacks are
// made to fault, the guest starts here, and the rest arrives while it runs.
#include <chrono>

#include "pagewire/migration/destination_migration.hpp"
#include "postcopy_pages.hpp"
#include "switch_record.hpp"

namespace pagewire::migration {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace

Error DestinationMigration::refuse_postcopy(const Error& why) {
  session_.answer_postcopy(false, why.message);
  return Error{"postcopy refused: " + why.message + "; the guest keeps running on the source", why.code, why.detail};
}

// Everything before the guest may run here: the list of what is missing (checked: it came
// from the network), the faults armed, the streams turned to placing what arrives.
Status DestinationMigration::start_postcopy(const PostcopyStartHook& on_start, PostcopyReceiveReport* report) {
  if (!on_start) {
    return make_error(ErrorCode::kConfiguration, "this destination has no postcopy start hook: it cannot run the guest "
                                                 "before every page is here");
  }
  const MigrationMemory& memory = digest_.memory();
  auto runs = read_missing_runs(memory.state_area(), memory.guest_pages());
  if (!runs) return runs.error();
  auto state = read_device_state(memory.state_area());
  if (!state) return state.error();
  auto lazy = PostcopyPages::start(memory, *runs, [this](std::uint64_t page) { session_.request_page(page); });
  if (!lazy) return lazy.error();
  postcopy_ = std::move(lazy).value();
  if (Status begun = session_.begin_postcopy(); !begun) return begun.error();
  digest_.place_through(postcopy_.get());
  report->missing_pages = postcopy_->missing();
  const StartingImage image{.ram = memory.ram(), .device_state = *state, .missing_pages = postcopy_->missing()};
  if (Status started = on_start(image); !started) {
    return make_error(ErrorCode::kHook, "the postcopy start hook failed: " + started.error().message);
  }
  return Ok{};
}

Result<PostcopyReceiveReport> DestinationMigration::run_postcopy(const PostcopyStartHook& on_start) {
  const auto asked = Clock::now();
  PostcopyReceiveReport report;
  if (Status started = start_postcopy(on_start, &report); !started) return refuse_postcopy(started.error());
  session_.answer_postcopy(true);
  const auto running = Clock::now();
  report.switched = true;
  report.switch_ms = ms_between(asked, running);
  auto lost = [](const std::string& why) {
    return make_error(ErrorCode::kGuestLost, "postcopy failed after the guest started here: " + why +
                                                 "; it lacks pages that will never come: stop it");
  };
  if (auto finished = session_.run_until_finished(); !finished) return lost(finished.error().message);
  report.pages_ms = ms_between(running, Clock::now());
  if (const std::string failure = postcopy_->failure(); !failure.empty()) return lost(failure);
  if (postcopy_->placed() != postcopy_->missing()) {
    return lost(std::to_string(postcopy_->placed()) + " of the " + std::to_string(postcopy_->missing()) +
                " missing pages arrived");
  }
  report.remote_faults = postcopy_->faults();
  report.pages_requested = session_.totals().streams.pages_requested;
  const LazyPages::Latencies waits = postcopy_->latencies();
  report.fault_median_us = waits.median_us;
  report.fault_p99_us = waits.p99_us;
  report.fault_max_us = waits.max_us;
  return report;
}

}  // namespace pagewire::migration
