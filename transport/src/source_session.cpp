// SourceSession after its handshake: rounds handed to the stream cores (or polled here),
// keepalives between rounds, and the switchover's exchanges on the control queue.
#include <rte_cycles.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "control_channel.hpp"
#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/session.hpp"
#include "session_shared.hpp"
#include "window_growth.hpp"

namespace pagewire::transport {

void SourceSession::begin_round(std::span<const std::uint64_t> pages, std::uint32_t generation, RoundPages kind) {
  for (auto& list : round_pages_) list.clear();
  for (std::uint64_t page : pages) {
    if (page < config_.region_pages) {
      round_pages_[stream_of_page(page, config_.region_pages, config_.streams)].push_back(page);
    }
  }
  for (std::uint16_t s = 0; s < streams_.size(); ++s) {
    streams_[s].assign(round_pages_[s], &memory_, generation, kind == RoundPages::kStable);
  }
}

SourceSession::SourceSession() = default;

std::uint16_t SourceSession::streams() const { return static_cast<std::uint16_t>(streams_.size()); }
bool SourceSession::poll(std::uint16_t s, std::uint64_t now_tsc) { return streams_[s].poll(now_tsc); }
const SourceStream& SourceSession::stream(std::uint16_t s) const { return streams_[s]; }
const PublishedCounters& SourceSession::published(std::uint16_t s) const { return streams_[s].published(); }
bool SourceSession::congestion_controlled() const { return !streams_.empty() && streams_[0].congestion_controlled(); }

void SourceSession::set_rate_cap(double bytes_per_second) {
  rate_cap_per_stream_.store(bytes_per_second / static_cast<double>(streams_.size()), std::memory_order_relaxed);
}

double SourceSession::rate_cap() const {
  return rate_cap_per_stream_.load(std::memory_order_relaxed) * static_cast<double>(streams_.size());
}

SourceSession::~SourceSession() {
  runner_.reset();     // every stream core parked and ended before its stream goes
  telemetry_.reset();  // before the streams whose counters it reads
  streams_.clear();    // frees every frame that points at the region
  if (dma_port_ != nullptr) unmap_for_dma(*dma_port_, memory_);
}

void SourceSession::begin_finish() {
  for (auto& stream : streams_) stream.finish();
}

Status SourceSession::run_until_idle(std::uint32_t timeout_ms, const std::function<void()>& tick) {
  if (runner_ == nullptr) return poll_here_until_idle(timeout_ms, tick);
  runner_->start([this](std::uint16_t s) { poll_until_done(streams_[s], *runner_); });
  return await_stream_cores(timeout_ms, tick);
}

Status SourceSession::silent_destination() const {
  return make_error(ErrorCode::kPeerGone, "the destination acknowledged nothing for " +
                    std::to_string(silence_limit_ms(config_, guest_running_)) + " ms: it is gone or the path is down" +
                    link_note(control_.port));
}

double SourceSession::longest_silence_ms() const {
  return static_cast<double>(outages_.longest_tsc) * 1000 / static_cast<double>(rte_get_tsc_hz());
}

namespace {
Error streams_busy(std::uint32_t timeout_ms) {
  return make_error(ErrorCode::kTimeout, "source: streams still busy after " + std::to_string(timeout_ms) +
                    " ms (destination gone, or the path lost every frame)");
}
}  // namespace

Status SourceSession::stopped() const {
  if (cancelled_->is_set()) return make_error(ErrorCode::kCancelled, "cancelled: " + cancelled_->reason());
  const StopReason& theirs = streams_[0].destination_abort();
  if (theirs.is_set()) return make_error(ErrorCode::kAborted, "the destination aborted: " + theirs.reason());
  return Ok{};
}

Status SourceSession::poll_here_until_idle(std::uint32_t timeout_ms, const std::function<void()>& tick) {
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  Ticker ticker(tick);
  SilenceWatch peer(ms_to_tsc(silence_limit_ms(config_, guest_running_)), &outages_, ms_to_tsc(config_.peer_timeout_ms));
  for (;;) {
    bool busy = false;
    const std::uint64_t now = rte_rdtsc();
    std::uint64_t acks = 0;
    for (std::uint16_t s = 0; s < streams_.size(); ++s) {
      busy |= streams_[s].poll(now);
      acks += streams_[s].counters().acks_received;
    }
    if (Status stop = stopped(); !stop) return stop;
    if (!busy) return Ok{};
    if (peer.expired(acks, now)) return silent_destination();
    if (now > deadline) return streams_busy(timeout_ms);
    windows_->look();
    ticker.at(now);
  }
}

// The control thread's side of a round on the stream cores: it watches the counters they
// publish, and calls them back when the destination falls silent or time runs out.
Status SourceSession::await_stream_cores(std::uint32_t timeout_ms, const std::function<void()>& tick) {
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  Ticker ticker(tick);
  SilenceWatch peer(ms_to_tsc(silence_limit_ms(config_, guest_running_)), &outages_, ms_to_tsc(config_.peer_timeout_ms));
  ControlWait wait;
  while (!runner_->all_done()) {
    const std::uint64_t now = rte_rdtsc();
    if (Status stop = stopped(); !stop) {
      runner_->stop();
      return stop;
    }
    if (peer.expired(published_totals().streams.acks_received, now)) {
      runner_->stop();
      return silent_destination();
    }
    if (now > deadline) {
      runner_->stop();
      return streams_busy(timeout_ms);
    }
    windows_->look();
    ticker.at(now);
    wait.pause();
  }
  return Ok{};
}

void SourceSession::keep_alive_while(const std::function<bool()>& busy) {
  const std::uint64_t interval = std::max<std::uint64_t>(ms_to_tsc(config_.peer_timeout_ms) / 4, 1);
  // One stream's share: late ACKs in; on stream 0, a keepalive every interval.
  auto keep_alive = [interval](SourceStream& stream, std::uint16_t s, std::uint64_t now, std::uint64_t* next) {
    stream.poll(now);
    if (s == 0 && now >= *next) {
      stream.send_keepalive();
      *next = now + interval;
    }
  };
  // Cancelled, or the destination gone: the caller's next wait says so.
  auto keep_going = [&] { return busy() && stopped().ok(); };
  if (runner_ == nullptr) {
    std::uint64_t next_keepalive = rte_rdtsc();
    while (keep_going()) {
      const std::uint64_t now = rte_rdtsc();
      for (std::uint16_t s = 0; s < streams_.size(); ++s) keep_alive(streams_[s], s, now, &next_keepalive);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return;
  }
  runner_->start([&](std::uint16_t s) {
    std::uint64_t next_keepalive = rte_rdtsc();
    while (!runner_->stop_requested()) {
      keep_alive(streams_[s], s, rte_rdtsc(), &next_keepalive);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // nothing to send between rounds
    }
  });
  while (keep_going()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  runner_->stop();
}

void SourceSession::on_control_queue(const std::function<void()>& work) {
  if (runner_ == nullptr) {
    work();
    return;
  }
  runner_->start([&](std::uint16_t s) {
    if (s == 0) work();
  });
  ControlWait wait;
  while (!runner_->all_done()) wait.pause();
}

template <typename Handle>
bool SourceSession::exchange(FrameType request, std::uint32_t timeout_ms, Handle&& handle) {
  // These run while the guest is paused: repeat a lost request soon, after twice the
  // smoothed RTT (2 ms at least), backing off to 100 ms or 2 RTT.
  const std::uint64_t srtt_us = totals().streams.srtt_us;  // here: the stream cores are parked
  bool answered = false;
  on_control_queue([&] {
    const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
    std::uint64_t wait_us = std::max<std::uint64_t>(2000, 2 * srtt_us);
    const std::uint64_t max_wait_us = std::max<std::uint64_t>(100000, 2 * srtt_us);
    for (std::uint32_t id = 1; !answered && rte_rdtsc() < deadline; ++id, wait_us = std::min(2 * wait_us, max_wait_us)) {
      send_control(control_, config_.path, FrameFields{.type = request, .stream = 0, .session = session_, .seq = id},
                   nullptr, 0, crypto(0));
      // Not the answer: stream 0's (we run on its core), as its poll would take it; postcopy's
      // page requests among them, for the round begun before (the guest may already run
      // there and fault before its answer reaches us).
      answered = await_control(control_, config_.path, config_.streams, session_,
                               std::min(deadline, rte_rdtsc() + wait_us * rte_get_tsc_hz() / 1000000),
                               &control_counters_, crypto(0), [&](const ReceivedFrame& frame, const rte_mbuf*) {
                                 if (handle(frame)) return true;
                                 streams_[0].take(frame, rte_rdtsc());
                                 return false;
                               });
    }
  });
  return answered;
}

Result<Digest> SourceSession::verify(std::uint32_t timeout_ms) {
  if (Status stop = stopped(); !stop) return stop.error();
  Digest digest{};
  std::string aborted;
  const bool answered = exchange(FrameType::kVerify, timeout_ms, [&](const ReceivedFrame& frame) {
    if (frame.type == FrameType::kAbort) {
      aborted = abort_reason(frame.payload, frame.payload_bytes);
      return true;
    }
    if (frame.type != FrameType::kVerifyReply || frame.payload_bytes < sizeof(VerifyPayload)) return false;
    VerifyPayload payload;
    std::memcpy(&payload, frame.payload, sizeof payload);
    std::memcpy(digest.data(), payload.digest, digest.size());
    return true;
  });
  if (!answered) return make_error(ErrorCode::kPeerGone, "the destination did not send its digest within " + std::to_string(timeout_ms) + " ms");
  if (!aborted.empty()) return make_error(ErrorCode::kAborted, "the destination aborted: " + aborted);
  return digest;
}

Status SourceSession::commit(std::uint32_t timeout_ms) {
  std::string refusal;
  bool refused = false;
  const bool answered = exchange(FrameType::kCommit, timeout_ms, [&](const ReceivedFrame& frame) {
    if (frame.type == FrameType::kAbort) {
      refused = true;
      refusal = abort_reason(frame.payload, frame.payload_bytes);
      return true;
    }
    return frame.type == FrameType::kCommitAck;
  });
  if (answered) close();
  if (!answered) {
    return make_error(ErrorCode::kCommitUnknown, "the destination did not confirm the commit within " +
                                                     std::to_string(timeout_ms) + " ms: whether it kept its image is unknown");
  }
  if (refused) {
    return make_error(ErrorCode::kCommitRefused, "the destination refused the commit: " + refusal);
  }
  return Ok{};
}

Status SourceSession::switch_to_postcopy(std::uint32_t timeout_ms) {
  if (Status stop = stopped(); !stop) return stop.error();
  bool running = false;
  std::string refusal;
  const bool answered = exchange(FrameType::kPostcopy, timeout_ms, [&](const ReceivedFrame& frame) {
    if (frame.type == FrameType::kAbort) {
      refusal = abort_reason(frame.payload, frame.payload_bytes);
      return true;
    }
    if (frame.type != FrameType::kPostcopyAck || frame.payload_bytes < sizeof(PostcopyAnswerPayload)) return false;
    PostcopyAnswerPayload answer;
    std::memcpy(&answer, frame.payload, sizeof answer);
    running = answer.answer == kPostcopyRunning;
    if (!running) refusal.assign(answer.reason, strnlen(answer.reason, sizeof answer.reason));
    return true;
  });
  if (!answered) {
    return make_error(ErrorCode::kCommitUnknown, "the destination did not say within " + std::to_string(timeout_ms) +
                                                     " ms whether it runs the guest: it may");
  }
  if (!running) return make_error(ErrorCode::kCommitRefused, "the destination could not run the guest: " + refusal);
  return Ok{};
}

void SourceSession::begin_postcopy_round(std::span<const std::uint64_t> pages, std::uint32_t generation) {
  begin_round(pages, generation, RoundPages::kStable);
  for (std::uint16_t s = 0; s < streams_.size(); ++s) {
    streams_[s].serve_page_requests(first_page_of_stream(s, config_.region_pages, config_.streams),
                                    first_page_of_stream(static_cast<std::uint16_t>(s + 1), config_.region_pages,
                                                         config_.streams));
  }
}

// The destination answers a repeated COMMIT for as long as the source may be asking: CLOSE
// tells it the answer arrived. Unanswered, so said three times; if all are lost, the
// destination stops once the source has been silent for its peer timeout.
void SourceSession::close() {
  on_control_queue([&] {
    for (int i = 0; i < 3; ++i) {
      send_control(control_, config_.path, FrameFields{.type = FrameType::kClose, .stream = 0, .session = session_},
                   nullptr, 0, crypto(0));
    }
  });
}

void SourceSession::abort(const std::string& reason) {
  const std::string text = reason.substr(0, 200);
  on_control_queue([&] {
    for (int i = 0; i < 3; ++i) {
      send_control(control_, config_.path, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = session_},
                   text.data(), static_cast<std::uint16_t>(text.size()), crypto(0));
    }
  });
}

SessionTotals SourceSession::totals() const {
  SessionTotals totals;
  totals.streams.drops = control_counters_.drops;
  for (const auto& stream : streams_) {
    totals.streams += stream.counters();
    totals.encoded += stream.encoder().counters();
    totals.delta_cache += stream.encoder().delta_cache().counters();
    totals.duplicates += stream.encoder().duplicates();
  }
  return totals;
}

// A bit per page marks `dirty` (set and cleared again here, so the cost follows the dirty
// pages and the copies, not the region): a round of an idle guest sends 100,000s of COPYs,
// and a binary search for each one's source took 23 ms of a 1 GiB switchover.
void SourceSession::append_copies_of(std::span<const std::uint64_t> dirty, std::vector<std::uint64_t>* pages) const {
  if (dirty_bits_.empty()) dirty_bits_.resize(config_.region_pages / 64 + 1);
  auto bit = [](std::uint64_t page) { return std::uint64_t{1} << (page % 64); };
  for (std::uint64_t page : dirty) {
    if (page < config_.region_pages) dirty_bits_[page / 64] |= bit(page);
  }
  for (const auto& stream : streams_) {
    for (const pagecodec::PageCopy& copy : stream.encoder().copies()) {
      if (copy.source < config_.region_pages && (dirty_bits_[copy.source / 64] & bit(copy.source)) != 0) {
        pages->push_back(copy.page);
      }
    }
  }
  for (std::uint64_t page : dirty) {
    if (page < config_.region_pages) dirty_bits_[page / 64] = 0;
  }
}

SessionTotals SourceSession::published_totals() const { return published_totals_of(streams_); }

unsigned SourceSession::stream_lcore(std::uint16_t s) const { return lcore_of(runner_, s); }

const std::string& SourceSession::window_note() const { return windows_->note(); }

}  // namespace pagewire::transport
