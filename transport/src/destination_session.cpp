// DestinationSession after its handshake: the streams applied until FIN (on their cores or
// polled here), TIME-WAIT, and the commit.
#include <rte_cycles.h>
#include <rte_ring.h>

#include <algorithm>
#include <span>
#include <string>

#include "control_channel.hpp"
#include "destination_responder.hpp"
#include "pagewire/transport/session.hpp"
#include "session_shared.hpp"
#include "window_growth.hpp"

namespace pagewire::transport {

DestinationSession::DestinationSession() = default;

std::uint16_t DestinationSession::streams() const { return static_cast<std::uint16_t>(streams_.size()); }
bool DestinationSession::poll(std::uint16_t s, std::uint64_t now_tsc) { return streams_[s].poll(now_tsc); }
const DestinationStream& DestinationSession::stream(std::uint16_t s) const { return streams_[s]; }
const PublishedCounters& DestinationSession::published(std::uint16_t s) const { return streams_[s].published(); }

DestinationSession::~DestinationSession() {
  runner_.reset();  // every stream core parked and ended before its stream goes
  for (rte_ring* ring : page_requests_) rte_ring_free(ring);
}

bool DestinationSession::finished() const {
  return std::all_of(streams_.begin(), streams_.end(), [](const auto& s) { return s.finished(); });
}

Status DestinationSession::failed_stream() const {
  for (const auto& stream : streams_) {
    if (stream.failed()) return make_error("destination " + stream.failure());
  }
  return Ok{};
}

namespace {
Error silent_source(std::uint32_t peer_timeout_ms, std::uint16_t port) {
  return make_error(ErrorCode::kPeerGone, "the source sent nothing for " + std::to_string(peer_timeout_ms) +
                    " ms: it is gone or the path is down" + link_note(port));
}
// Anything the source sent: data, or a keepalive between rounds.
std::uint64_t frames_from_source(const StreamCounters& counters) {
  return counters.frames_received + counters.duplicates + counters.probes_received;
}
}  // namespace

double DestinationSession::longest_silence_ms() const {
  return static_cast<double>(outages_.longest_tsc) * 1000 / static_cast<double>(rte_get_tsc_hz());
}

Status DestinationSession::run_until_finished() {
  if (runner_ != nullptr) return run_stream_cores_until_finished();
  SilenceWatch peer(ms_to_tsc(silence_limit_ms(config_, true)), &outages_, ms_to_tsc(config_.peer_timeout_ms));
  for (;;) {
    bool busy = false;
    const std::uint64_t now = rte_rdtsc();
    std::uint64_t frames = 0;
    for (std::uint16_t s = 0; s < streams_.size(); ++s) {
      busy |= streams_[s].poll(now);
      if (streams_[s].failed()) return failed_stream();
      frames += frames_from_source(streams_[s].counters());
    }
    if (peer.expired(frames, now) && busy) return silent_source(silence_limit_ms(config_, true), port_);
    if (responder_->was_aborted()) return make_error(ErrorCode::kAborted, responder_->aborted());
    if (responder_->postcopy_pending()) return Ok{};
    if (Status cancelled = abort_if_cancelled(); !cancelled) return cancelled;
    if (!busy) return Ok{};
    windows_->look();
  }
}

Status DestinationSession::run_stream_cores_until_finished() {
  runner_->start([this](std::uint16_t s) { poll_until_done(streams_[s], *runner_); });
  SilenceWatch peer(ms_to_tsc(silence_limit_ms(config_, true)), &outages_, ms_to_tsc(config_.peer_timeout_ms));
  ControlWait wait;
  for (;;) {
    bool all_done = true;
    for (std::uint16_t s = 0; s < streams_.size(); ++s) {
      if (!runner_->done(s)) {
        all_done = false;
      } else if (streams_[s].failed()) {  // done: its state is ours to read
        runner_->stop();
        return failed_stream();
      }
    }
    if (all_done) return Ok{};
    if (responder_->was_aborted()) {
      runner_->stop();
      return make_error(ErrorCode::kAborted, responder_->aborted());
    }
    if (responder_->postcopy_pending()) {
      runner_->stop();
      return Ok{};
    }
    if (cancelled_->is_set()) {
      runner_->stop();
      return abort_if_cancelled();
    }
    if (peer.expired(frames_from_source(published_totals().streams), rte_rdtsc())) {
      runner_->stop();
      return silent_source(silence_limit_ms(config_, true), port_);
    }
    windows_->look();
    wait.pause();
  }
}

namespace {
// TIME-WAIT for `streams` (all of them from one thread, or one on its own core): answers
// until their line has been quiet for 100 ms (2 s at most).
void linger_on(std::span<DestinationStream> streams) {
  SilenceWatch line(ms_to_tsc(100));
  const std::uint64_t give_up = rte_rdtsc() + ms_to_tsc(2000);
  for (std::uint64_t now = rte_rdtsc(); now < give_up; now = rte_rdtsc()) {
    std::uint64_t frames = 0;
    for (auto& stream : streams) {
      stream.poll(now);
      frames += stream.counters().frames_received + stream.counters().duplicates + stream.counters().acks_sent;
    }
    if (line.expired(frames, now)) return;
  }
}
}  // namespace

void DestinationSession::linger() {
  if (runner_ == nullptr) {
    linger_on(streams_);
    return;
  }
  runner_->start([this](std::uint16_t s) { linger_on(std::span(&streams_[s], 1)); });
  ControlWait wait;
  while (!runner_->all_done()) wait.pause();
}

Status DestinationSession::abort_if_cancelled() {
  if (!cancelled_->is_set()) return Ok{};
  const std::string reason = cancelled_->reason();
  responder_->abort("the destination was cancelled: " + reason);
  return make_error(ErrorCode::kCancelled, "cancelled: " + reason);
}

void DestinationSession::linger_until_closed() {
  SilenceWatch source(ms_to_tsc(config_.commit_linger_ms));
  auto heard = [this](const StreamCounters& counters) {
    return frames_from_source(counters) + responder_->frames_heard();
  };
  if (runner_ == nullptr) {
    for (std::uint64_t now = rte_rdtsc(); !responder_->closed() && !cancelled_->is_set(); now = rte_rdtsc()) {
      StreamCounters counters;
      for (auto& stream : streams_) {
        stream.poll(now);
        counters += stream.counters();
      }
      if (source.expired(heard(counters), now)) return;
    }
    return;
  }
  runner_->start([this](std::uint16_t s) {
    IdleBackoff backoff(runner_->options().idle_sleep_us);
    while (!runner_->stop_requested() && !responder_->closed()) {
      streams_[s].poll(rte_rdtsc());
      backoff.after_poll(traffic(streams_[s].counters()));
    }
  });
  ControlWait wait;
  while (!runner_->all_done() && !cancelled_->is_set() && !source.expired(heard(published_totals().streams), rte_rdtsc())) {
    wait.pause();
  }
  runner_->stop();
}

Status DestinationSession::await_commit(const Digest& digest, std::uint64_t region_bytes, std::uint32_t timeout_ms) {
  responder_->set_verification(digest, region_bytes);  // the stream cores are parked
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  auto no_commit = [&] {
    return make_error(ErrorCode::kPeerGone, "no commit from the source within " + std::to_string(timeout_ms) +
                      " ms: the image must be discarded");
  };
  // Keep every stream answering: a lost FIN_ACK is asked for again, VERIFY and COMMIT
  // arrive on stream 0.
  if (runner_ == nullptr) {
    while (!responder_->commit_requested()) {
      if (responder_->was_aborted()) return make_error(ErrorCode::kAborted, responder_->aborted());
      if (Status cancelled = abort_if_cancelled(); !cancelled) return cancelled;
      const std::uint64_t now = rte_rdtsc();
      if (now > deadline) return no_commit();
      for (auto& stream : streams_) stream.poll(now);
    }
    return Ok{};
  }
  runner_->start([this](std::uint16_t s) {
    DestinationStream& stream = streams_[s];
    IdleBackoff backoff(runner_->options().idle_sleep_us);
    while (!runner_->stop_requested()) {
      stream.poll(rte_rdtsc());
      // The responder lives on stream 0's core: only it reads the outcome here.
      if (s == 0 && (responder_->commit_requested() || responder_->was_aborted())) return;
      backoff.after_poll(traffic(stream.counters()));
    }
  });
  ControlWait wait;
  while (!runner_->done(0) && rte_rdtsc() <= deadline && !cancelled_->is_set()) wait.pause();
  runner_->stop();
  if (responder_->commit_requested()) return Ok{};
  if (Status cancelled = abort_if_cancelled(); !cancelled) return cancelled;
  if (responder_->was_aborted()) return make_error(ErrorCode::kAborted, responder_->aborted());
  return no_commit();
}

void DestinationSession::acknowledge_commit() { responder_->acknowledge(); }

void DestinationSession::refuse_commit(const std::string& reason) { responder_->refuse(reason); }

SessionTotals DestinationSession::totals() const {
  SessionTotals totals;
  totals.streams.drops = control_counters_.drops;
  for (const auto& stream : streams_) {
    totals.streams += stream.counters();
    totals.decoded += stream.decoder().counters();
  }
  return totals;
}

const std::string& DestinationSession::window_note() const { return windows_->note(); }

SessionTotals DestinationSession::published_totals() const { return published_totals_of(streams_); }

unsigned DestinationSession::stream_lcore(std::uint16_t s) const { return lcore_of(runner_, s); }

}  // namespace pagewire::transport
