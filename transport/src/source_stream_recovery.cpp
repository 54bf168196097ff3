// SourceStream: what the ACKs say (SACK scoreboard, RTT samples), holes repaired once RACK
// deems them lost, resends by timer (RetransmitTimer), and resending a frame whole or, after
// the path MTU fell, in parts.
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/stream.hpp"
#include "source_stream_shared.hpp"

namespace pagewire::transport {

using namespace source_stream;

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
  timer_.on_ack(youngest_sent != 0 ? now - youngest_sent : 0, advanced);
  counters_.srtt_us = timer_.srtt() * 1000000 / tsc_hz_;
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
  const std::uint64_t reordering_window = timer_.srtt() + timer_.srtt() / 4;
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

void SourceStream::retransmit_due(std::uint64_t now) {
  // Timeout: resend the oldest outstanding frames whose timer ran out, or one frame as a
  // tail-loss probe once everything was sent (RetransmitTimer says which). Frames go out in
  // order, so the scan stops at the first one not yet due; SACKed frames (no mbuf) are
  // skipped.
  const bool all_sent = pages_.empty() && staged_.empty() && unsent_ == snd_nxt_;
  const RetransmitTimer::Wait wait = timer_.wait(all_sent);
  const bool probe = wait.probe;
  std::uint16_t resent = 0;
  const std::uint16_t most = probe ? 1 : tuning_.burst;
  for (std::uint32_t seq = snd_una_; seq_diff(seq, unsent_) < 0 && resent < most; ++seq) {
    InFlight& entry = slot(seq);
    if (entry.mbuf == nullptr) continue;
    if (now - entry.sent_tsc < wait.ticks) break;
    if (!send_held(entry.mbuf, now)) break;
    stamp_sent(entry, now);
    entry.sent_before = snd_nxt_;
    entry.retransmitted = true;
    ++resent;
    ++(probe ? counters_.tail_probes : counters_.retransmits_timeout);
  }
  if (resent > 0) timer_.on_fired(probe);
  // Timers in a row (tail probes or timeouts) with nothing acknowledged: a dead peer, or a
  // path that now drops frames of our size. A small probe tells them apart.
  if (resent > 0 && timer_.fired_without_progress() >= tuning_.black_hole_timeouts && !search_ &&
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

}  // namespace pagewire::transport
