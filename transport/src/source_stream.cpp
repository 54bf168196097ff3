#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/stream.hpp"

#include <rte_lcore.h>

#include "pagewire/transport/arp.hpp"

namespace pagewire::transport {

namespace {


constexpr std::uint16_t kMaxBurst = 64;
// Unanswered probes before a size counts as failed (RFC 8899's MAX_PROBES): one lost probe
// on a busy path must not shrink the MTU.
constexpr std::uint32_t kProbeTries = 3;

std::uint64_t us_to_tsc(std::uint64_t us, std::uint64_t hz) { return us * hz / 1000000; }

}  // namespace

SourceStream::SourceStream(std::uint16_t index, QueueRef queue, const Path& path,
                           std::uint32_t session, std::uint16_t payload_bytes,
                           const StreamTuning& tuning, pagecodec::Encoder encoder, FrameCrypto* crypto)
    : index_(index),
      queue_(queue),
      path_(path),
      session_(session),
      payload_bytes_(payload_bytes),
      initial_mtu_(static_cast<std::uint16_t>(kIpOverhead + payload_bytes + (crypto != nullptr ? sizeof(SealTrailer) : 0))),
      path_mtu_(initial_mtu_),
      tuning_(tuning),
      encoder_(std::move(encoder)),
      crypto_(crypto),
      tsc_hz_(rte_get_tsc_hz()),
      staged_(encoder_.max_record_bytes(), payload_bytes),
      window_(window_slots(tuning, kEthernetBytes + initial_mtu_)),
      peer_window_(static_cast<std::uint32_t>(window_.size()) - 1),
      rto_(us_to_tsc(tuning.initial_rto_us, tsc_hz_)),
      frame_bytes_(kEthernetBytes + initial_mtu_),
      pacing_(tsc_hz_, frame_bytes_, us_to_tsc(tuning.initial_rtt_us, tsc_hz_)),
      // The session resolves kAuto from the path before it builds the streams.
      pacing_on_(tuning.congestion_control == StreamTuning::CongestionControl::kOn),
      link_rate_(tsc_hz_),
      measures_link_(encoder_.config().policy.adaptive.enabled &&
                     encoder_.config().policy.adaptive.link_bytes_per_second == 0) {
  resend_.reserve(kMaxResendPages);
  resending_.reserve(kMaxResendPages);
  encoder_.set_send_cap(tuning.rate_bytes_per_second);  // the adaptive policy sees our own cap
  clear_payload_.resize(payload_bytes);
  counters_.path_mtu = path_mtu_;
}

SourceStream::~SourceStream() {
  for (auto& entry : window_) {
    if (entry.mbuf != nullptr) rte_pktmbuf_free(entry.mbuf);
  }
}

void SourceStream::assign(std::span<const std::uint64_t> pages, const pagecodec::PageMap* memory,
                          std::uint32_t generation, bool stable) {
  pages_ = pages;
  memory_ = memory;
  generation_ = generation;
  encoder_.begin_round(pages);
  by_reference_ = stable && tuning_.zero_copy && queue_.references && crypto_ == nullptr;
}

void SourceStream::finish() { fin_wanted_ = true; }

bool SourceStream::poll(std::uint64_t now) {
  poll_owner_.note(rte_lcore_id());
  receive(now);
  if (search_ && now - probe_sent_tsc_ > std::max(2 * srtt_, rto_)) mtu_search_step(search_->on_unanswered(), now);
  if (!search_ && path_mtu_ < initial_mtu_ && raise_due_tsc_ != 0 && now >= raise_due_tsc_) {
    // The old size first, never below what passes now.
    start_mtu_search(PathMtuSearch(kMinPathMtu, initial_mtu_, path_mtu_, PathMtuSearch::Start::kTop, kProbeTries),
                     false, now);
  }
  if (pages_.empty() && !resend_.empty()) start_resend();
  if (holes_waiting_) repair_holes(now);
  retransmit_due(now);
  transmit(now);
  const bool data_left = !pages_.empty() || !staged_.empty() || snd_una_ != snd_nxt_;
  if (!data_left && fin_wanted_ && !fin_acked_) send_fin(now);
  // A search after a black hole is part of repairing the stream; one looking for a larger
  // MTU again is not worth holding a round (or the switchover) for.
  const bool busy = data_left || (fin_wanted_ && !fin_acked_) || (search_ && search_after_loss_);
  follow_live_rate_cap();
  if (measures_link_ && link_rate_.on_poll(now, acked_bytes_, held_by_path_, srtt_)) {
    encoder_.set_measured_link_rate(link_rate_.bytes_per_second());
  }
  if (publish_schedule_.due(now, !busy)) {
    published_->publish({.stream = counters_, .pages = encoder_.counters().pages});
    publish_schedule_.published(now, !busy, tsc_hz_);
  }
  return busy;
}

void SourceStream::take_resend(const ReceivedFrame& frame) {
  ResendPayload header;
  if (frame.payload_bytes < sizeof header || fin_acked_) return;
  std::memcpy(&header, frame.payload, sizeof header);
  const std::size_t count =
      std::min<std::size_t>(header.count.get(), (frame.payload_bytes - sizeof header) / sizeof(le64));
  ++counters_.resend_requests;
  for (std::size_t i = 0; i < count; ++i) {
    le64 page;
    std::memcpy(&page, frame.payload + sizeof header + i * sizeof page, sizeof page);
    // Hostile input: a page outside the region is ignored (the encoder would refuse it).
    if (page.get() >= encoder_.config().region_pages || resend_.size() == kMaxResendPages) continue;
    encoder_.forget(page.get());
    resend_.push_back(page.get());
  }
  fin_sent_tsc_ = 0;  // a FIN already out no longer ends the stream: send a new one after
}

void SourceStream::start_resend() {
  if (memory_ == nullptr) {
    resend_.clear();
    return;
  }
  std::sort(resend_.begin(), resend_.end());  // the encoder takes ascending pages
  resend_.erase(std::unique(resend_.begin(), resend_.end()), resend_.end());
  resending_.swap(resend_);
  resend_.clear();
  pages_ = resending_;
  counters_.pages_resent += resending_.size();
}

void SourceStream::receive(std::uint64_t now) {
  rte_mbuf* burst[64];
  const std::uint16_t n = rte_eth_rx_burst(queue_.port, queue_.queue, burst,
                                           std::min<std::uint16_t>(tuning_.burst, 64));
  for (std::uint16_t i = 0; i < n; ++i) {
    if (answer_arp(burst[i], path_.local, queue_)) {
      rte_pktmbuf_free(burst[i]);
      continue;
    }
    ReceivedFrame frame = parse_frame(burst[i], path_, 0xffff, session_);
    if (frame.drop == FrameDrop::kNone && frame.stream != index_) frame.drop = FrameDrop::kWrongPort;
    if (frame.drop == FrameDrop::kNone) frame.drop = open_frame(&burst[i], &frame, crypto_, queue_.pool);
    if (frame.drop != FrameDrop::kNone) {
      ++counters_.drops[static_cast<std::size_t>(frame.drop)];
    } else if (frame.type == FrameType::kAck) {
      on_ack(frame, now);
    } else if (frame.type == FrameType::kFinAck && fin_wanted_ && frame.seq == snd_nxt_) {
      fin_acked_ = true;
    } else if (frame.type == FrameType::kResend) {
      take_resend(frame);
    } else if (frame.type == FrameType::kProbeAck) {
      on_probe_ack(frame, now);
    } else if (frame.type == FrameType::kAbort) {
      destination_abort_->set(std::string_view(reinterpret_cast<const char*>(frame.payload),
                                               std::min<std::size_t>(frame.payload_bytes, 200)));
    }
    rte_pktmbuf_free(burst[i]);
  }
}

void SourceStream::mark_sacked(std::uint32_t seq, std::uint32_t* highest, std::uint64_t* youngest_sent,
                               Delivered* delivered) {
  if (seq_diff(seq, snd_una_) < 0 || seq_diff(seq, snd_nxt_) >= 0) return;
  InFlight& entry = slot(seq);
  if (!entry.sacked && entry.sent_tsc != 0) {
    if (rtt_sample(entry, seq)) *youngest_sent = std::max(*youngest_sent, entry.sent_tsc);
    delivered->add(entry);
    rte_pktmbuf_free(entry.mbuf);
    entry.mbuf = nullptr;
    entry.sacked = true;
    ++sacked_;
  }
  if (seq_diff(seq, *highest) > 0) *highest = seq;
}

// Whether a frame this ACK newly reports times the path: sent once (Karn's rule), and
// beyond every frame reported before, so it has just arrived. An ACK reports the blocks the
// receiver touched last, and when a retransmission fills a hole, its block brings along
// frames that arrived long ago; their age is the repair's, not the path's.
bool SourceStream::rtt_sample(const InFlight& entry, std::uint32_t seq) const {
  return !entry.retransmitted && seq_diff(seq, reported_end_) >= 0;
}

void SourceStream::on_ack(const ReceivedFrame& frame, std::uint64_t now) {
  ++counters_.acks_received;
  const std::uint32_t ack = frame.seq;
  if (seq_diff(ack, snd_nxt_) > 0 || seq_diff(ack, snd_una_) < 0) {
    ++counters_.outside_window;  // acknowledges what we never sent, or an old ACK
    return;
  }
  peer_window_ = std::min<std::uint32_t>(frame.window, static_cast<std::uint32_t>(window_.size()) - 1);
  counters_.peer_window = peer_window_;
  // The RTT sample is the youngest frame this ACK newly reports, sent once (Karn's rule):
  // the frame whose arrival triggered it. The oldest newly acked frame may have waited
  // behind a repaired hole, and would count the repair as path delay.
  std::uint64_t youngest_sent = 0;
  Delivered delivered;
  const bool advanced = snd_una_ != ack;
  for (; snd_una_ != ack; ++snd_una_) {
    InFlight& entry = slot(snd_una_);
    if (!entry.sacked && rtt_sample(entry, snd_una_)) youngest_sent = std::max(youngest_sent, entry.sent_tsc);
    if (!entry.sacked && entry.sent_tsc != 0) delivered.add(entry);
    if (entry.mbuf != nullptr) rte_pktmbuf_free(entry.mbuf);
    if (entry.sacked) --sacked_;
    entry = InFlight{};
  }
  if (seq_diff(unsent_, snd_una_) < 0) unsent_ = snd_una_;

  // Selective ACKs: the header's 64 frames after the cumulative ACK, then the payload's
  // blocks further out (bounded: at most kAckSackBlocks of them are read).
  std::uint32_t highest = ack;
  std::uint64_t sack = frame.sack;
  for (std::uint32_t bit = 0; sack != 0 && bit < 64; ++bit, sack >>= 1) {
    if (sack & 1) mark_sacked(ack + 1 + bit, &highest, &youngest_sent, &delivered);
  }
  const std::size_t blocks = std::min<std::size_t>(frame.payload_bytes / sizeof(SackBlock), kAckSackBlocks);
  for (std::size_t b = 0; b < blocks; ++b) {
    SackBlock block;
    std::memcpy(&block, frame.payload + b * sizeof(SackBlock), sizeof block);
    std::uint64_t received = block.received.get();
    for (std::uint32_t bit = 0; received != 0 && bit < 64; ++bit, received >>= 1) {
      if (received & 1) mark_sacked(block.base.get() + bit, &highest, &youngest_sent, &delivered);
    }
  }

  // An ACK after a repair reports the blocks around the hole, below what came before.
  const std::uint32_t reported_end = seq_diff(highest, ack) > 0 ? highest + 1 : ack;
  if (seq_diff(reported_end, reported_end_) > 0) reported_end_ = reported_end;
  if (youngest_sent != 0) {
    // RFC 6298.
    const std::uint64_t rtt = now - youngest_sent;
    if (srtt_ == 0) {
      srtt_ = rtt;
      rttvar_ = rtt / 2;
    } else {
      const std::uint64_t delta = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
      rttvar_ = (3 * rttvar_ + delta) / 4;
      srtt_ = (7 * srtt_ + rtt) / 8;
    }
    counters_.srtt_us = srtt_ * 1000000 / tsc_hz_;
  }
  if (youngest_sent != 0 || advanced) recompute_rto();  // progress undoes the timeout backoff
  if (advanced) {
    timeouts_without_progress_ = 0;
    probe_unanswered_ = false;
  }
  acked_bytes_ += delivered.bytes;
  if (pacing_on_ && delivered.bytes != 0) {
    pacing_.on_ack(now, delivered.bytes, delivered.youngest, delivered.youngest_sent_tsc,
                   youngest_sent != 0 ? now - youngest_sent : 0, inflight_bytes());
  }

  if (seq_diff(highest_sacked_, snd_una_) < 0) highest_sacked_ = snd_una_;
  if (seq_diff(highest, ack) <= 0 || seq_diff(highest, highest_sacked_) <= 0) {
    if (holes_waiting_) repair_holes(now);  // a hole's time may have come
    return;
  }
  highest_sacked_ = highest;
  repair_from_ = snd_una_;  // a higher frame arrived: every hole below it may now be lost
  repair_holes(now);
}

// A hole is lost once a frame sent at least kReorderThreshold frames after it has arrived
// (RFC 6675's DupThresh, counted in frames since ours go out in order) and it has been out
// for more than an RTT and a quarter (RACK's reordering window, RFC 8985): a path with
// jitter reorders frames by more than three places, and resending those would spend the
// link on copies. A retransmitted hole is only resent again once frames sent after the
// retransmission arrive, so a lost retransmission is found without a timer. The scan
// resumes where pacing cut it short (poll() calls again), so a burst of thousands of
// losses is resent at the pacing rate, each hole looked at once per new SACK frontier.
void SourceStream::repair_holes(std::uint64_t now) {
  constexpr std::uint32_t kReorderThreshold = 3;
  if (seq_diff(repair_from_, snd_una_) < 0) repair_from_ = snd_una_;
  const std::uint64_t reordering_window = srtt_ + srtt_ / 4;
  bool waiting = false;
  std::uint32_t first_waiting = 0;
  std::uint32_t seq = repair_from_;
  for (; seq_diff(seq, highest_sacked_) < 0 && seq_diff(seq, unsent_) < 0; ++seq) {
    InFlight& entry = slot(seq);
    if (entry.mbuf == nullptr ||
        seq_diff(highest_sacked_, entry.sent_before) + 1 < static_cast<std::int32_t>(kReorderThreshold)) {
      continue;
    }
    if (now - entry.sent_tsc < reordering_window) {
      if (!waiting) first_waiting = seq;
      waiting = true;
      // Frames sent once go out in order: every later one is younger still, and so is any
      // later retransmission.
      if (!entry.retransmitted) break;
      continue;
    }
    if (!send_held(entry.mbuf, now)) break;  // paced or TX full: poll() goes on from here
    if (pacing_on_) pacing_.on_loss(entry.bytes);
    stamp_sent(entry, now);
    entry.sent_before = snd_nxt_;
    entry.retransmitted = true;
    ++counters_.retransmits_sack;
  }
  const bool cut_short = seq_diff(seq, highest_sacked_) < 0 && seq_diff(seq, unsent_) < 0;
  // The next look starts at the first hole still too young, else where this one stopped.
  repair_from_ = waiting ? first_waiting : seq;
  holes_waiting_ = waiting || cut_short;
}

void SourceStream::recompute_rto() {
  const std::uint64_t floor = us_to_tsc(tuning_.min_rto_us, tsc_hz_);
  // RFC 6298's srtt + 4 rttvar, but never inside SACK's reordering window (1.25 srtt): on
  // a steady long path rttvar is tiny, and the timer would resend holes SACK is about to.
  const std::uint64_t estimate =
      srtt_ == 0 ? us_to_tsc(tuning_.initial_rto_us, tsc_hz_) : srtt_ + std::max(4 * rttvar_, srtt_ / 2);
  rto_ = std::clamp<std::uint64_t>(estimate, floor, us_to_tsc(tuning_.max_rto_us, tsc_hz_));
}

void SourceStream::retransmit_due(std::uint64_t now) {
  // Timeout: resend the oldest outstanding frames whose timer ran out. Once everything has
  // been sent, no later frame will arrive to reveal a tail loss by SACK, so a tail-loss probe
  // (one frame) fires after 2 SRTT + the ACK delay (RFC 8985) instead of a full RTO; one
  // probe until something is acknowledged, then the RTO, which alone backs off (RFC 6298
  // 5.5), so a path gone dark sees resends further and further apart, not a probe every
  // 2 SRTT. Frames go out in order, so the scan stops at the first one not yet due; SACKed
  // frames (no mbuf) are skipped.
  const bool all_sent = pages_.empty() && staged_.empty() && unsent_ == snd_nxt_;
  std::uint64_t timeout = rto_;
  bool probe = false;
  if (all_sent && srtt_ != 0 && !probe_unanswered_) {
    const std::uint64_t tail = 2 * srtt_ + us_to_tsc(tuning_.ack_delay_us, tsc_hz_);
    if (tail < timeout) {
      timeout = tail;
      probe = true;
    }
  }
  std::uint16_t resent = 0;
  const std::uint16_t most = probe ? 1 : tuning_.burst;
  for (std::uint32_t seq = snd_una_; seq_diff(seq, unsent_) < 0 && resent < most; ++seq) {
    InFlight& entry = slot(seq);
    if (entry.mbuf == nullptr) continue;
    if (now - entry.sent_tsc < timeout) break;
    if (!send_held(entry.mbuf, now)) break;
    stamp_sent(entry, now);
    entry.sent_before = snd_nxt_;
    entry.retransmitted = true;
    ++resent;
    ++(probe ? counters_.tail_probes : counters_.retransmits_timeout);
  }
  if (resent > 0 && !probe) rto_ = std::min<std::uint64_t>(2 * rto_, us_to_tsc(tuning_.max_rto_us, tsc_hz_));
  if (resent > 0 && probe) probe_unanswered_ = true;
  // Timers in a row (tail probes or timeouts) with nothing acknowledged: a dead peer, or a
  // path that now drops frames of our size. A small probe tells them apart.
  if (resent > 0 && ++timeouts_without_progress_ >= tuning_.black_hole_timeouts && !search_ &&
      path_mtu_ > kMinPathMtu) {
    start_mtu_search(PathMtuSearch(kMinPathMtu, path_mtu_, 0, PathMtuSearch::Start::kFloor, kProbeTries), true, now);
  }
  if (resent > 0 && pacing_on_) pacing_.on_timeout(sent_inflight_bytes());
}

// Sends one frame we keep a reference to: the device releases its own reference when done.
bool SourceStream::send_one(rte_mbuf* mbuf, std::uint64_t now) {
  if (!tokens_for(rte_pktmbuf_pkt_len(mbuf), now)) return false;
  rte_pktmbuf_refcnt_update(mbuf, 1);
  if (rte_eth_tx_burst(queue_.port, queue_.queue, &mbuf, 1) == 0) {
    rte_pktmbuf_refcnt_update(mbuf, -1);
    ++counters_.tx_queue_full;
    return false;
  }
  ++counters_.frames_sent;
  return true;
}

void SourceStream::stamp_sent(InFlight& entry, std::uint64_t now) {
  if (pacing_on_) entry.stamp = pacing_.on_send(now, sent_inflight_bytes());
  entry.sent_tsc = now;
}

// A token bucket at the lower of the configured cap and the congestion controller's rate.
bool SourceStream::send_held(rte_mbuf* mbuf, std::uint64_t now) {
  if (path_mtu_ == initial_mtu_) return send_one(mbuf, now);  // every frame was built to fit
  const PayloadRange payload = held_payload(mbuf);
  return payload.bytes <= payload_bytes_ ? send_one(mbuf, now) : send_parts(mbuf, payload, now);
}

// A frame built before the path's MTU fell goes as parts of whole kFragmentUnits that fit
// (the receiver rebuilds it); the frame itself stays ours until acknowledged, whole.
bool SourceStream::send_parts(const rte_mbuf* frame, PayloadRange payload, std::uint64_t now) {
  const std::uint32_t part_bytes = payload_bytes_ / kFragmentUnit * kFragmentUnit;
  const auto count = static_cast<unsigned>((payload.bytes + part_bytes - 1) / part_bytes);
  if (!tokens_for(payload.bytes + count * (kEthernetBytes + kIpOverhead), now)) return false;
  FrameHeader header;
  copy_bytes(frame, payload.offset - sizeof header, sizeof header, reinterpret_cast<std::byte*>(&header));
  // Sealed frames are one segment (only clear frames carry pages by reference).
  const std::byte* clear = rte_pktmbuf_mtod_offset(frame, const std::byte*, payload.offset);
  if (crypto_ != nullptr && crypto_->encrypts()) {
    SealTrailer trailer;
    std::memcpy(&trailer, clear + payload.bytes, sizeof trailer);
    if (!crypto_->unseal_own(header, {clear, payload.bytes}, clear_payload_.data(), trailer)) return false;
    clear = clear_payload_.data();
  } else if (frame->next != nullptr) {
    copy_bytes(frame, payload.offset, payload.bytes, clear_payload_.data());
    clear = clear_payload_.data();
  }
  rte_mbuf* parts[kMaxPathMtu / kFragmentUnit + 1];
  if (rte_pktmbuf_alloc_bulk(queue_.pool, parts, count) != 0) {
    ++counters_.mbuf_exhausted;
    return false;
  }
  for (unsigned p = 0; p < count; ++p) {
    const std::size_t offset = std::size_t{p} * part_bytes;
    const std::size_t bytes = std::min<std::size_t>(part_bytes, payload.bytes - offset);
    std::memcpy(frame_payload(parts[p]), clear + offset, bytes);
    finish_frame(parts[p], path_,
                 FrameFields{.type = FrameType::kData, .stream = index_, .session = session_, .seq = header.seq.get(),
                             .sack = payload.bytes, .window = static_cast<std::uint32_t>(offset), .fragment = true},
                 static_cast<std::uint16_t>(bytes), 0, crypto_);
  }
  const std::uint16_t sent = rte_eth_tx_burst(queue_.port, queue_.queue, parts, static_cast<std::uint16_t>(count));
  for (unsigned p = sent; p < count; ++p) rte_pktmbuf_free(parts[p]);
  counters_.fragments_sent += sent;
  counters_.frames_sent += sent;
  if (sent < count) ++counters_.tx_queue_full;
  return sent == count;  // a part short: the whole frame goes again later
}

void SourceStream::start_mtu_search(PathMtuSearch search, bool after_loss, std::uint64_t now) {
  search_ = search;
  search_after_loss_ = after_loss;
  probe_size_ = 0;
  send_mtu_probe(now);
}

bool SourceStream::send_probe(std::uint32_t seq, std::uint16_t pad_to_ip_bytes) {
  rte_mbuf* mbuf = alloc_frame();
  if (mbuf == nullptr) return false;
  finish_frame(mbuf, path_, FrameFields{.type = FrameType::kProbe, .stream = index_, .session = session_, .seq = seq},
               0, pad_to_ip_bytes, crypto_);
  if (!transmit_one(queue_.port, queue_.queue, mbuf)) ++counters_.tx_queue_full;
  return true;
}

void SourceStream::send_keepalive() {
  send_probe(kKeepaliveProbeSeq, 0);  // not built: the next one will do
}

void SourceStream::send_mtu_probe(std::uint64_t now) {
  probe_sent_tsc_ = now;
  if (search_->testing() != probe_size_) {
    probe_size_ = search_->testing();
    first_probe_at_size_ = probe_id_ + 1;
  }
  // Not built: it counts as lost when its time is up.
  if (send_probe(probe_id_ + 1, search_->testing())) ++probe_id_;
}

void SourceStream::on_probe_ack(const ReceivedFrame& frame, std::uint64_t now) {
  if (search_ && seq_diff(frame.seq, first_probe_at_size_) >= 0 && seq_diff(frame.seq, probe_id_) <= 0) {
    const std::uint16_t passed = search_->testing();
    if (passed > path_mtu_) use_path_mtu(passed);  // larger frames from now on
    mtu_search_step(search_->on_answered(), now);
  }
}

// What the search says after a verdict. After a black hole, the size in use failing where
// small probes pass is what shrinks it: a descheduled peer or a congested queue also leaves
// timers silent for a while, and then both pass.
void SourceStream::mtu_search_step(PathMtuSearch::Next next, std::uint64_t now) {
  if (search_after_loss_ && search_->top_failed() && path_mtu_ > search_->largest_passing()) {
    ++counters_.black_holes;
    use_path_mtu(search_->largest_passing());
    recompute_rto();  // what is outstanding goes again, in parts, at the next timer
  }
  switch (next) {
    case PathMtuSearch::Next::kProbe:
      send_mtu_probe(now);
      return;
    case PathMtuSearch::Next::kDone:
      raise_due_tsc_ = now + us_to_tsc(std::uint64_t{tuning_.mtu_raise_interval_ms} * 1000, tsc_hz_);
      break;
    case PathMtuSearch::Next::kFailed:
      break;  // not even small frames pass: the peer timeout decides
  }
  search_.reset();
}

void SourceStream::use_path_mtu(std::uint16_t mtu) {
  path_mtu_ = std::min(mtu, initial_mtu_);
  payload_bytes_ = static_cast<std::uint16_t>(payload_for_mtu(path_mtu_, crypto_ != nullptr));
  counters_.path_mtu = path_mtu_;
}

void SourceStream::follow_live_rate_cap() {
  if (live_rate_cap_ == nullptr) return;
  const double cap = live_rate_cap_->load(std::memory_order_relaxed);
  if (cap == tuning_.rate_bytes_per_second) return;
  tuning_.rate_bytes_per_second = cap;
  encoder_.set_send_cap(cap);  // the adaptive policy weighs deflate against the new cap
}

bool SourceStream::tokens_for(std::size_t bytes, std::uint64_t now) {
  double rate = tuning_.rate_bytes_per_second;
  if (pacing_on_) {
    rate = rate > 0 ? std::min(rate, pacing_.pacing_bytes_per_second()) : pacing_.pacing_bytes_per_second();
  }
  if (rate <= 0) return true;
  // Bursts of up to 4 ms' worth (64 KiB at least): a poll loop cannot send frames one by one
  // at exact times, and a core held up for a moment (an interrupt, a page fault, a CPU
  // shared with other work) catches up instead of losing the time. A NIC's queue and a
  // bottleneck's of 20 ms or more absorb that much.
  const double burst_bytes = std::max(64.0 * 1024, rate * 0.004);
  tokens_ = std::min(burst_bytes, tokens_ + static_cast<double>(now - tokens_tsc_) * rate / static_cast<double>(tsc_hz_));
  tokens_tsc_ = now;
  if (tokens_ < static_cast<double>(bytes)) return false;
  tokens_ -= static_cast<double>(bytes);
  return true;
}

// Encodes straight into a new frame when records can be whole in it: no DEFLATE batch
// (whose RAW fallback may exceed a frame), nothing staged or half-framed, and a frame that
// holds a one-page record (RAW batches shrink to what fits; a DELTA is smaller than a
// page). Returns the frame, or nullptr when the staging path must be used.
rte_mbuf* SourceStream::encode_into_frame() {
  if (encoder_.config().policy.deflate || !staged_.empty() || pages_.empty() ||
      payload_bytes_ < pagecodec::kRecordHeaderBytes + encoder_.config().page_size) {
    return nullptr;
  }
  rte_mbuf* mbuf = alloc_frame();
  if (mbuf == nullptr) return nullptr;
  pagecodec::PageReferences references;
  const pagecodec::EncodeProgress progress = encoder_.encode(*memory_, pages_, generation_, {frame_payload(mbuf), payload_bytes_},
                                                             by_reference_ ? &references : nullptr);
  pages_ = pages_.subspan(progress.pages_consumed);
  if (progress.bytes_written == 0) {
    rte_pktmbuf_free(mbuf);
    return nullptr;
  }
  attach_references(mbuf, progress.bytes_written, references);
  finish_frame(mbuf, path_, FrameFields{.type = FrameType::kData, .stream = index_, .session = session_, .seq = snd_nxt_},
               static_cast<std::uint16_t>(progress.bytes_written), 0, crypto_);
  counters_.payload_bytes_sent += progress.bytes_written;
  return mbuf;
}

void SourceStream::attach_references(rte_mbuf* frame, std::size_t payload_bytes,
                                     const pagecodec::PageReferences& references) {
  if (references.count == 0) return;
  if (!attach_page_references(frame, static_cast<std::uint16_t>(payload_bytes), references, queue_.references)) {
    ++counters_.mbuf_exhausted;  // the pages are encoded already: copy them into their places
    for (std::size_t r = 0; r < references.count; ++r) {
      std::memcpy(frame_payload(frame) + references.items[r].offset, references.items[r].bytes, references.items[r].length);
    }
    return;
  }
  for (std::size_t r = 0; r < references.count; ++r) referenced_bytes_ += references.items[r].length;
  counters_.pages_by_reference += referenced_bytes_ / encoder_.config().page_size;
  referenced_bytes_ %= encoder_.config().page_size;
}

// Cuts the next frame from the staged records; nullptr when nothing is staged.
rte_mbuf* SourceStream::frame_from_staging() {
  // No pages, no memory yet: a stream that sends only FIN or keepalives has none assigned.
  if (staged_.bytes() < payload_bytes_ && !staged_.splitting() && !pages_.empty()) {
    staged_.refill(encoder_, *memory_, &pages_, generation_, by_reference_);
  }
  const std::size_t bytes = staged_.next_frame_bytes(payload_bytes_);
  if (bytes == 0) return nullptr;
  rte_mbuf* mbuf = alloc_frame();
  if (mbuf == nullptr) return nullptr;  // nothing was taken; try again next poll
  pagecodec::PageReferences references;
  staged_.take(bytes, frame_payload(mbuf), &references);
  attach_references(mbuf, bytes, references);
  finish_frame(mbuf, path_, FrameFields{.type = FrameType::kData, .stream = index_, .session = session_, .seq = snd_nxt_},
               static_cast<std::uint16_t>(bytes), 0, crypto_);
  counters_.payload_bytes_sent += bytes;
  return mbuf;
}

// Frames in flight the path allows (see StreamTuning::window_frames).
std::uint32_t SourceStream::send_window() const {
  const auto slots = static_cast<std::uint32_t>(window_.size()) - 1;
  const std::uint32_t cap = tuning_.window_frames != 0 ? std::min(tuning_.window_frames, slots) : slots;
  if (!pacing_on_) return tuning_.window_frames != 0 ? cap : std::min(StreamTuning::kUncontrolledWindowFrames, slots);
  return std::clamp<std::uint32_t>(static_cast<std::uint32_t>(pacing_.window_bytes() / frame_bytes_), 1, cap);
}

// A frame to build into. None free: counted, and the stream asks its reserve for room for
// what it holds and a burst more, which the control thread adds (FrameReserve).
rte_mbuf* SourceStream::alloc_frame() {
  rte_mbuf* mbuf = queue_.reserve != nullptr ? queue_.reserve->alloc(queue_.pool) : rte_pktmbuf_alloc(queue_.pool);
  if (mbuf != nullptr) return mbuf;
  ++counters_.mbuf_exhausted;
  if (queue_.reserve != nullptr) queue_.reserve->ask(snd_nxt_ - snd_una_ + 2u * kMaxBurst);
  return nullptr;
}

void SourceStream::transmit(std::uint64_t now) {
  // Frames built earlier but refused by a full TX queue or the rate limit go first.
  while (unsent_ != snd_nxt_) {
    InFlight& entry = slot(unsent_);
    if (!send_held(entry.mbuf, now)) return;
    stamp_sent(entry, now);
    entry.sent_before = unsent_ + 1;
    ++unsent_;
  }
  // New frames go out as one burst; the device may take fewer, the rest wait in unsent_.
  rte_mbuf* burst[kMaxBurst];
  std::uint16_t built = 0;
  const std::uint32_t window = send_window();
  held_by_path_ = false;
  while (built < std::min<std::uint16_t>(tuning_.burst, kMaxBurst)) {
    const auto outstanding = static_cast<std::uint32_t>(snd_nxt_ - snd_una_);
    if (outstanding >= peer_window_ || outstanding - sacked_ >= window) {
      held_by_path_ = true;  // the path (or the receiver) takes less than we could send
      break;
    }
    rte_mbuf* mbuf = encode_into_frame();
    if (mbuf == nullptr) mbuf = frame_from_staging();
    if (mbuf == nullptr) {
      // Nothing more to send with room in the window: the next rate samples are the
      // sender's, not the path's.
      if (pacing_on_ && pages_.empty()) pacing_.on_app_limited(inflight_bytes());
      break;
    }
    InFlight& entry = slot(snd_nxt_);
    entry = InFlight{};
    entry.mbuf = mbuf;
    entry.bytes = static_cast<std::uint16_t>(rte_pktmbuf_pkt_len(mbuf));
    ++snd_nxt_;
    if (!tokens_for(rte_pktmbuf_pkt_len(mbuf), now)) {  // built, sent once tokens allow
      held_by_path_ = true;
      break;
    }
    rte_pktmbuf_refcnt_update(mbuf, 1);                      // ours stays in the window
    burst[built++] = mbuf;
  }
  if (built == 0) return;
  const std::uint16_t sent = rte_eth_tx_burst(queue_.port, queue_.queue, burst, built);
  for (std::uint16_t i = sent; i < built; ++i) rte_pktmbuf_refcnt_update(burst[i], -1);
  if (sent < built) ++counters_.tx_queue_full;
  counters_.frames_sent += sent;
  for (std::uint16_t i = 0; i < sent; ++i, ++unsent_) {
    stamp_sent(slot(unsent_), now);
    slot(unsent_).sent_before = unsent_ + 1;
  }
  counters_.peak_in_flight = std::max<std::uint64_t>(counters_.peak_in_flight, unsent_ - snd_una_ - sacked_);
}

void SourceStream::send_fin(std::uint64_t now) {
  if (fin_sent_tsc_ != 0 && now - fin_sent_tsc_ < rto_) return;
  rte_mbuf* mbuf = alloc_frame();
  if (mbuf == nullptr) return;
  finish_frame(mbuf, path_,
               FrameFields{.type = FrameType::kFin, .stream = index_, .session = session_, .seq = snd_nxt_}, 0, 0,
               crypto_);
  if (!transmit_one(queue_.port, queue_.queue, mbuf)) {
    ++counters_.tx_queue_full;
    return;
  }
  ++counters_.frames_sent;
  fin_sent_tsc_ = now;
}

}  // namespace pagewire::transport
