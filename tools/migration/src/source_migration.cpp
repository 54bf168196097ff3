#include "pagewire/migration/source_migration.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <numeric>

namespace pagewire::migration {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Once the guest is paused every second is downtime, but giving up would only trade it for a
// resume: the switchover gets this long whatever is left of max_seconds. A silent
// destination still fails it within its peer timeout.
constexpr std::uint32_t kSwitchoverPhaseLimitMs = 60000;

}  // namespace

std::uint64_t state_pages_for(std::uint64_t max_state_bytes, std::uint32_t page_size) {
  return (sizeof(std::uint64_t) + max_state_bytes + page_size - 1) / page_size;
}

SourceMigration::SourceMigration(transport::SourceSession& session, const MigrationMemory& memory,
                                 GuestControl& guest, DirtyTracker& tracker, const MigrationOptions& options)
    : session_(session),
      memory_(memory),
      digest_(memory.pages()),
      guest_pages_(memory.guest_pages()),
      page_size_(memory.page_size()),
      guest_(guest),
      tracker_(tracker),
      dirty_(memory.guest_pages()),
      options_(options) {}

Status SourceMigration::collect_dirty(std::vector<std::uint64_t>* pages) {
  if (Status collected = tracker_.collect(dirty_); !collected) {
    return make_error(ErrorCode::kHook, "dirty tracking: " + collected.error().message);
  }
  dirty_.drain(pages);
  return Ok{};
}

Status SourceMigration::throttle_more() {
  const double throttle = throttle_ == 0 ? options_.throttle_first : throttle_ + options_.throttle_step;
  if (Status set = guest_.set_throttle(std::min(throttle, options_.throttle_max)); !set) {
    return make_error(ErrorCode::kHook, "guest throttle: " + set.error().message);
  }
  throttle_ = std::min(throttle, options_.throttle_max);
  return Ok{};
}

Error SourceMigration::give_up(const Error& why) {
  session_.abort(why.message);
  // The guest as it was: unthrottled and running. A hook failing here changes nothing more.
  if (throttle_ > 0) (void)guest_.set_throttle(0);
  if (paused_) guest_.resume();
  paused_ = false;
  tracker_.stop();
  return Error{why.message + "; the guest keeps running on the source", why.code, why.detail};
}

double SourceMigration::refresh_digest() {
  // A full hash takes about 0.1 s per GiB (docs/benchmarks.md): from 50 GiB on, longer than the
  // destination waits for a silent source. The session sends keepalives meanwhile.
  std::future<double> hashed = std::async(std::launch::async, [this] {
    const auto start = Clock::now();
    digest_.refresh();
    return seconds_since(start);  // the hash alone, not the keepalive loop's last sleep
  });
  session_.keep_alive_while(
      [&] { return hashed.wait_for(std::chrono::seconds(0)) != std::future_status::ready; });
  return hashed.get();
}

std::uint32_t SourceMigration::pre_copy_ms_left() const {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up_at_ - Clock::now()).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 1, UINT32_MAX));
}

Result<RoundReport> SourceMigration::send_round(std::span<const std::uint64_t> pages, std::uint32_t round,
                                                std::uint32_t timeout_ms, transport::SourceSession::RoundPages kind) {
  const transport::SessionTotals before = session_.totals();
  // The stream cores run while progress is shown: it reads what they publish.
  const transport::SessionTotals published_before = session_.published_totals();
  const auto start = Clock::now();
  session_.begin_round(pages, ++generation_, kind);
  auto show_progress = [&] {
    RoundProgress progress{.round = round, .pages = pages.size(), .seconds = seconds_since(start)};
    const transport::SessionTotals now = session_.published_totals();
    for (int e = 0; e < pagecodec::kEncodingCount; ++e) {
      progress.pages_done += now.encoded.pages[e] - published_before.encoded.pages[e];
    }
    on_progress_(progress);
  };
  const std::function<void()> tick = on_progress_ ? std::function<void()>(show_progress) : nullptr;
  if (auto status = session_.run_until_idle(timeout_ms, tick); !status) {
    if (!paused_ && Clock::now() >= give_up_at_) {
      return make_error(ErrorCode::kTimeout, "max_seconds (" + std::to_string(options_.max_seconds) +
                                                 " s) ran out before every page of the round was acknowledged");
    }
    return status.error();
  }
  const transport::SessionTotals after = session_.totals();
  RoundReport report;
  report.round = round;
  report.pages = pages.size();
  report.seconds = std::max(seconds_since(start), 1e-9);
  report.wire_bytes = after.encoded.output_bytes - before.encoded.output_bytes;
  report.guest_gbps = static_cast<double>(pages.size()) * page_size_ * 8 / report.seconds / 1e9;
  report.throttle = throttle_;
  for (int e = 0; e < pagecodec::kEncodingCount; ++e) {
    report.pages_by_encoding[e] = after.encoded.pages[e] - before.encoded.pages[e];
  }
  return report;
}

Result<MigrationReport> SourceMigration::run(std::span<const std::byte> device_state,
                                             const std::function<void(const RoundReport&)>& on_round,
                                             const std::function<void(const RoundProgress&)>& on_progress) {
  on_progress_ = on_progress;
  const std::uint64_t state_pages = memory_.state_pages();
  if (sizeof(std::uint64_t) + device_state.size() > state_pages * page_size_) {
    session_.abort("device state too large");
    return make_error(ErrorCode::kConfiguration, "device state of " + std::to_string(device_state.size()) +
                                                     " bytes does not fit in " + std::to_string(state_pages) +
                                                     " state pages");
  }
  if (Status started = tracker_.start(); !started) {
    session_.abort("dirty tracking failed to start");
    return make_error(ErrorCode::kHook, "dirty tracking: " + started.error().message);
  }
  // The switchover ends with both sides rehashing the pages the last round carried: time a
  // full hash here to budget for that per block.
  block_hash_seconds_ = refresh_digest() / static_cast<double>(digest_.blocks());

  const auto start = Clock::now();
  give_up_at_ = start + std::chrono::seconds(options_.max_seconds);
  MigrationReport report;
  report.guest_pages = guest_pages_;
  std::vector<std::uint64_t> pages(guest_pages_);
  std::iota(pages.begin(), pages.end(), 0);
  // Round 0 sends everything; the hash above may have read some pages before writes that
  // the tracker (started before it) reports after round 0, so the digest follows them there.

  // A tracker that holds writers off pages in flight lets every round go zero-copy.
  const auto pre_copy_pages = tracker_.protects_pages_in_flight() ? transport::SourceSession::RoundPages::kStable
                                                                  : transport::SourceSession::RoundPages::kMayChange;
  std::uint64_t previous_dirty = UINT64_MAX;
  int stalled = 0;
  session_.set_guest_running(true);  // an outage now costs only time: ridden out
  using Postcopy = MigrationOptions::Postcopy;
  bool postcopy = options_.postcopy == Postcopy::kNow;
  for (std::uint32_t round = 0; !postcopy; ++round) {
    auto sent = send_round(pages, round, pre_copy_ms_left(), pre_copy_pages);
    if (!sent) return give_up(in_context("round " + std::to_string(round) + ": ", sent.error()));
    pages.clear();
    if (Status collected = collect_dirty(&pages); !collected) return give_up(collected.error());
    add_stale_copies(&pages);
    digest_.mark_pages(pages, page_size_);
    sent->dirty_pages = pages.size();
    sent->dirty_pages_per_second = static_cast<double>(pages.size()) / sent->seconds;
    report.rounds = round + 1;
    report.pages_sent += sent->pages;
    report.wire_bytes += sent->wire_bytes;
    for (int e = 0; e < pagecodec::kEncodingCount; ++e) report.pages_by_encoding[e] += sent->pages_by_encoding[e];
    if (on_round) on_round(*sent);

    // Switch over once what is left, and the verification, fit in the downtime limit at this
    // round's rate for pages sent with their content: pages the guest writes are never all
    // zero and rarely equal to another, and ZERO and COPY records cost next to nothing, so
    // counting them would promise a faster final round than it is (round 0 of an idle guest
    // is half of each).
    const auto pages_as = [&](pagecodec::Encoding e) { return sent->pages_by_encoding[static_cast<std::size_t>(e)]; };
    const std::uint64_t cheap = pages_as(pagecodec::Encoding::kZero) + pages_as(pagecodec::Encoding::kCopy);
    const std::uint64_t with_content = sent->pages > cheap ? sent->pages - cheap : sent->pages;
    const double bytes_per_second = static_cast<double>(with_content) * page_size_ / sent->seconds;
    const double expected_ms = expected_downtime_seconds(pages.size(), bytes_per_second) * 1000;
    report.expected_downtime_ms = expected_ms;
    if (expected_ms <= downtime_limit_ms()) break;
    if (options_.postcopy == Postcopy::kAfterRounds && round + 1 >= options_.postcopy_after_rounds) {
      postcopy = true;
      break;
    }
    // Another round: bring the digest up to date with what this one saw the guest write
    // (more writes during the hash are marked by the next collect).
    refresh_digest();
    if (seconds_since(start) > options_.max_seconds) {
      return give_up(make_error(ErrorCode::kTimeout, "no convergence within " + std::to_string(options_.max_seconds) +
                                                         " s (" + std::to_string(pages.size()) + " pages still dirty)"));
    }
    stalled = pages.size() > previous_dirty * 9 / 10 ? stalled + 1 : 0;
    previous_dirty = pages.size();
    if (stalled >= 2 || round + 1 >= options_.max_rounds) {
      if (options_.postcopy == Postcopy::kWhenStuck) {
        postcopy = true;
        break;
      }
      if (options_.auto_converge && throttle_ < options_.throttle_max && round + 1 < options_.max_rounds) {
        if (Status throttled = throttle_more(); !throttled) return give_up(throttled.error());
        stalled = 0;
      } else {
        break;  // not converging, and throttling is off or exhausted: switch over anyway
      }
    }
  }
  report.final_throttle = throttle_;
  auto done = postcopy ? switch_to_postcopy(device_state, report, std::move(pages))
                      : switch_over(device_state, report, std::move(pages));
  if (done) {
    done->total_seconds = seconds_since(start);
    done->outages_ridden = session_.outages_ridden();
    done->longest_silence_ms = session_.longest_silence_ms();
  }
  return done;
}

void SourceMigration::add_stale_copies(std::vector<std::uint64_t>* dirty) const {
  std::vector<std::uint64_t> stale;
  session_.append_copies_of(*dirty, &stale);
  if (stale.empty()) return;
  dirty->insert(dirty->end(), stale.begin(), stale.end());
  std::sort(dirty->begin(), dirty->end());
  dirty->erase(std::unique(dirty->begin(), dirty->end()), dirty->end());
}

double SourceMigration::expected_downtime_seconds(std::uint64_t dirty_pages, double bytes_per_second) const {
  constexpr double kRoundTrips = 0.005;  // FIN, VERIFY and COMMIT exchanges on a quiet link
  // The source rehashes the blocks the final round carries while it goes out (switch_over),
  // so the two overlap; the destination's stream cores hash pages as they write them. The
  // state pages are not marked yet.
  const std::uint64_t state_blocks = memory_.state_area().size() / RegionDigest::kBlockBytes;
  const std::uint64_t blocks = digest_.stale_blocks() + state_blocks;
  const double rate = options_.switchover_gbps > 0 ? options_.switchover_gbps * 1e9 / 8 : bytes_per_second;
  const double send = static_cast<double>(dirty_pages) * page_size_ / std::max(rate, 1.0);
  return std::max(send, block_hash_seconds_ * static_cast<double>(blocks)) + kRoundTrips;
}

Result<MigrationReport> SourceMigration::switch_over(std::span<const std::byte> device_state, MigrationReport report,
                                                    std::vector<std::uint64_t> pages) {
  const auto paused_at = Clock::now();
  paused_ = true;  // a failed pause() is resumed too: it may have stopped some vCPUs
  session_.set_guest_running(false);  // paused, a dark path is waited out for the peer timeout only
  if (Status stopped = guest_.pause(); !stopped) {
    return give_up(make_error(ErrorCode::kHook, "guest pause: " + stopped.error().message));
  }
  auto fail = [&](const Error& why) -> Result<MigrationReport> { return give_up(in_context("switchover: ", why)); };
  // What the last round left, plus what the guest wrote until it stopped.
  if (Status collected = collect_dirty(&pages); !collected) return fail(collected.error());
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  add_stale_copies(&pages);
  // The device state, length first, in the pages after the guest's.
  std::byte* state = memory_.state_area().data();
  const std::uint64_t length = device_state.size();
  std::memcpy(state, &length, sizeof length);
  if (!device_state.empty()) std::memcpy(state + sizeof length, device_state.data(), device_state.size());
  for (std::uint64_t p = guest_pages_; p < memory_.pages().pages(); ++p) pages.push_back(p);
  digest_.mark_pages(pages, page_size_);
  // The region no longer changes: rehash what changed while the last round goes out, and
  // while the destination rehashes its own, so the two overlap instead of adding up.
  std::future<Digest> ours_later = std::async(std::launch::async, [this] {
    digest_.refresh();
    return digest_.digest();
  });
  auto phase_start = paused_at;
  auto phase_ms = [&] {
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - phase_start).count();
    phase_start = now;
    return ms;
  };
  report.pause_ms = phase_ms();
  // The guest is paused: its pages may go straight from its memory (zero-copy).
  auto last = send_round(pages, report.rounds, kSwitchoverPhaseLimitMs, transport::SourceSession::RoundPages::kStable);
  if (!last) return fail(last.error());
  report.final_round_ms = phase_ms();
  report.rounds += 1;
  report.pages_sent += last->pages;
  report.wire_bytes += last->wire_bytes;
  for (int e = 0; e < pagecodec::kEncodingCount; ++e) report.pages_by_encoding[e] += last->pages_by_encoding[e];
  session_.begin_finish();
  if (auto status = session_.run_until_idle(kSwitchoverPhaseLimitMs); !status) return fail(status.error());
  report.finish_ms = phase_ms();

  auto theirs = session_.verify(options_.verify_timeout_ms);
  const Digest ours = ours_later.get();
  report.verify_ms = phase_ms();
  if (!theirs) return fail(theirs.error());
  if (*theirs != ours) {
    return fail(make_error(ErrorCode::kVerification,
                           "digest mismatch: destination " + to_hex(*theirs) + ", source " + to_hex(ours)));
  }
  if (auto status = session_.commit(options_.commit_timeout_ms); !status) {
    if (status.error().code != ErrorCode::kCommitUnknown) return fail(status.error());
    // The destination may own the guest already: resuming it here could leave two running.
    tracker_.stop();
    return in_context("switchover: ", Error{status.error().message + "; the guest stays paused on the source "
                                            "until the destination's outcome is known", ErrorCode::kCommitUnknown});
  }
  report.commit_ms = phase_ms();
  report.downtime_ms = std::chrono::duration<double, std::milli>(Clock::now() - paused_at).count();
  report.verified = true;
  report.digest = to_hex(ours);
  tracker_.stop();
  return report;  // the guest stays paused: it now runs on the destination
}

}  // namespace pagewire::migration
