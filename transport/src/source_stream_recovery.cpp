// SourceStream: what the ACKs say (read into SendWindow's scoreboard), holes repaired once
// RACK deems them lost, resends by timer (RetransmitTimer), and resending a frame whole or,
// after the path MTU fell, in parts.
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/stream.hpp"
#include "source_stream_shared.hpp"

namespace pagewire::transport {

using namespace source_stream;

void SourceStream::on_ack(const ReceivedFrame& frame, std::uint64_t now) {
  ++counters_.acks_received;
  const auto release = [](rte_mbuf* mbuf) { rte_pktmbuf_free(mbuf); };
  SendWindow<rte_mbuf>::AckReport report;
  if (!window_.acknowledge(frame.seq, release, &report)) {
    ++counters_.outside_window;  // acknowledges what we never sent, or an old ACK
    return;
  }
  peer_window_ = std::min(frame.window, window_.capacity());
  counters_.peer_window = peer_window_;
  // Selective ACKs: the header's 64 frames after the cumulative ACK, then the payload's
  // blocks further out (bounded: at most kAckSackBlocks of them are read).
  std::uint64_t sack = frame.sack;
  for (std::uint32_t bit = 0; sack != 0 && bit < 64; ++bit, sack >>= 1) {
    if (sack & 1) window_.selective(frame.seq + 1 + bit, release, &report);
  }
  const std::size_t blocks = std::min<std::size_t>(frame.payload_bytes / sizeof(SackBlock), kAckSackBlocks);
  for (std::size_t b = 0; b < blocks; ++b) {
    SackBlock block;
    std::memcpy(&block, frame.payload + b * sizeof(SackBlock), sizeof block);
    std::uint64_t received = block.received.get();
    for (std::uint32_t bit = 0; received != 0 && bit < 64; ++bit, received >>= 1) {
      if (received & 1) window_.selective(block.base.get() + bit, release, &report);
    }
  }
  const bool new_frontier = window_.end_ack();

  // The RTT sample is the youngest frame this ACK newly reports, sent once (Karn's rule):
  // the frame whose arrival triggered it. The oldest newly acked frame may have waited
  // behind a repaired hole, and would count the repair as path delay.
  const std::uint64_t rtt = report.rtt_sent_tsc != 0 ? now - report.rtt_sent_tsc : 0;
  timer_.on_ack(rtt, report.advanced);
  counters_.srtt_us = timer_.srtt() * 1000000 / tsc_hz_;
  acked_bytes_ += report.bytes;
  if (pacing_on_ && report.bytes != 0) {
    pacing_.on_ack(now, report.bytes, report.youngest, report.youngest_sent_tsc, rtt, inflight_bytes());
  }
  if (new_frontier || window_.holes_waiting()) repair_holes(now);
}

// RACK's reordering window (RFC 8985): a hole is resent once it has been out for more than
// an RTT and a quarter, not only once three later frames overtook it: a path with jitter
// reorders frames by more than three places, and resending those would spend the link on
// copies. A burst of thousands of losses is resent at the pacing rate (SendWindow resumes
// where pacing cut the scan short).
void SourceStream::repair_holes(std::uint64_t now) {
  const std::uint64_t reordering_window = timer_.srtt() + timer_.srtt() / 4;
  window_.repair_holes(now, reordering_window, [&](InFlight& entry) {
    if (!send_held(entry.item, now)) return false;
    if (pacing_on_) pacing_.on_loss(entry.bytes);
    stamp_sent(entry, now);
    ++counters_.retransmits_sack;
    return true;
  });
}

void SourceStream::retransmit_due(std::uint64_t now) {
  // Timeout: resend the oldest outstanding frames whose timer ran out, or one frame as a
  // tail-loss probe once everything was sent (RetransmitTimer says which).
  const bool all_sent = pages_.empty() && staged_.empty() && window_.all_transmitted();
  const RetransmitTimer::Wait wait = timer_.wait(all_sent);
  const bool probe = wait.probe;
  const std::uint32_t resent = window_.resend_due(now, wait.ticks, probe ? 1 : tuning_.burst, [&](InFlight& entry) {
    if (!send_held(entry.item, now)) return false;
    stamp_sent(entry, now);
    return true;
  });
  (probe ? counters_.tail_probes : counters_.retransmits_timeout) += resent;
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
                             .fragment = true, .fragment_offset = static_cast<std::uint16_t>(offset),
                             .fragment_total = static_cast<std::uint16_t>(payload.bytes)},
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
