// DestinationStream: construction, the poll loop, the receive window (admission,
// reordering, holding frames out of order, fragments rebuilt), probes and ACKs with their
// selective blocks. Applying what arrives in order: destination_stream_records.cpp.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/stream.hpp"

namespace pagewire::transport {

DestinationStream::DestinationStream(std::uint16_t index, QueueRef queue, const Path& path,
                                     std::uint32_t session, const StreamTuning& tuning,
                                     pagecodec::Decoder decoder, const pagecodec::PageMap* memory,
                                     std::uint32_t* page_generations, std::size_t max_record_bytes,
                                     ControlResponder* control, std::uint64_t first_page, std::uint64_t end_page,
                                     FrameCrypto* crypto, AppliedPagesObserver* applied_pages)
    : index_(index),
      queue_(queue),
      path_(path),
      session_(session),
      tuning_(tuning),
      decoder_(std::move(decoder)),
      memory_(memory),
      page_generations_(page_generations),
      control_(control),
      crypto_(crypto),
      applied_pages_(applied_pages),
      first_page_(first_page),
      end_page_(end_page),
      tsc_hz_(rte_get_tsc_hz()),
      receive_window_(window_slots(tuning, rte_pktmbuf_data_room_size(queue.pool))),
      records_(max_record_bytes),
      ahead_records_(max_record_bytes),
      max_record_bytes_(max_record_bytes) {
  refused_.reserve(kMaxRefusedPages);
}

DestinationStream::~DestinationStream() {
  receive_window_.release_all([](rte_mbuf* mbuf) { rte_pktmbuf_free(mbuf); });
  rebuilds_.release_all([](rte_mbuf* mbuf) { rte_pktmbuf_free(mbuf); });
}

bool DestinationStream::poll(std::uint64_t now) {
  poll_owner_.note(rte_lcore_id());
  rte_mbuf* burst[64];
  const std::uint16_t n = rte_eth_rx_burst(queue_.port, queue_.queue, burst,
                                           std::min<std::uint16_t>(tuning_.burst, 64));
  for (std::uint16_t i = 0; i < n; ++i) {
    rte_mbuf* mbuf = burst[i];
    if (answer_arp(mbuf, path_.local, queue_)) {
      rte_pktmbuf_free(mbuf);
      continue;
    }
    ReceivedFrame frame = parse_frame(mbuf, path_, 0xffff, session_);
    if (frame.drop == FrameDrop::kNone && frame.stream != index_) frame.drop = FrameDrop::kWrongPort;
    // An outcome query is never sealed (its asker may hold no session keys): the responder
    // checks its own proof.
    if (frame.drop == FrameDrop::kNone) {
      frame.drop = frame.type != FrameType::kOutcomeQuery ? open_frame(&mbuf, &frame, crypto_, queue_.pool)
                   : frame.sealed                         ? FrameDrop::kSealMismatch
                                                          : FrameDrop::kNone;
    }
    if (frame.drop != FrameDrop::kNone) {
      ++counters_.drops[static_cast<std::size_t>(frame.drop)];
    } else if (frame.type == FrameType::kData && frame.fragment) {
      on_fragment(mbuf, frame, now);
      continue;  // on_fragment owns the mbuf
    } else if (frame.type == FrameType::kData) {
      on_data(mbuf, PayloadRange{frame.payload_offset, frame.payload_bytes}, frame.seq, frame.record_bounds, now);
      continue;  // on_data owns the mbuf
    } else if (frame.type == FrameType::kProbe) {
      // The source is looking for its path's MTU on this stream's queue, or, between rounds,
      // says it is still there.
      ++counters_.probes_received;
      answer_probe(frame);
    } else if (frame.type == FrameType::kFin) {
      // A source that resends refused pages sends data after its first FIN, then a later
      // one: never go back to an earlier FIN that arrives late.
      if (!fin_seen_ || seq_diff(frame.seq, fin_seq_) > 0) fin_seq_ = frame.seq;
      fin_seen_ = true;
      ack_due_tsc_ = now;
    } else if (control_ != nullptr) {
      if (const FrameDrop drop = control_->respond(frame, now); drop != FrameDrop::kNone) {
        ++counters_.drops[static_cast<std::size_t>(drop)];
      }
    } else {
      // A control frame is queue 0's to answer.
      ++counters_.drops[static_cast<std::size_t>(taken_by_destination(frame.type) ? FrameDrop::kWrongPort
                                                                                 : FrameDrop::kWrongDirection)];
    }
    rte_pktmbuf_free(mbuf);
  }
  if (!refused_.empty() && now >= resend_due_tsc_) send_resend(now);
  if (requests_ != nullptr) forward_page_requests(now);
  // Complete only with every refused page received again in full.
  if (fin_seen_ && receive_window_.next() == fin_seq_ && refused_.empty() && failure_.empty()) fin_applied_ = true;
  if (ack_due_tsc_ != 0 && now >= ack_due_tsc_) send_ack(fin_applied_ ? FrameType::kFinAck : FrameType::kAck);
  const bool busy = failure_.empty() && !fin_applied_;
  if (publish_schedule_.due(now, !busy)) {
    published_->publish({.stream = counters_, .pages = decoder_.counters().pages});
    publish_schedule_.published(now, !busy, tsc_hz_);
  }
  return busy;
}

bool DestinationStream::admit(rte_mbuf* mbuf, std::uint32_t seq, std::uint64_t now) {
  using Admission = ReceiveWindow<rte_mbuf>::Admission;
  const Admission admission = receive_window_.admit(seq);
  if (admission == Admission::kDuplicate) {
    ++counters_.duplicates;  // our ACK was lost: say again what we have
    ack_due_tsc_ = now;
    rte_pktmbuf_free(mbuf);
    return false;
  }
  if (admission == Admission::kOutside) {
    ++counters_.outside_window;
    rte_pktmbuf_free(mbuf);
    return false;
  }
  return true;
}

void DestinationStream::on_data(rte_mbuf* mbuf, PayloadRange payload, std::uint32_t seq, std::uint16_t record_bounds,
                                std::uint64_t now) {
  ++counters_.frames_received;
  if (!admit(mbuf, seq, now)) return;
  if (seq != receive_window_.next()) {
    ++counters_.out_of_order;
    ack_due_tsc_ = now;  // a hole: tell the sender at once
    if (apply_ahead(seq, mbuf, payload, record_bounds)) {
      rte_pktmbuf_free(mbuf);
      return;
    }
    // As parsed and opened: read by held_payload() when its turn comes.
    receive_window_.hold(seq, keepable(mbuf));
    return;
  }
  // In order: apply it and every frame that now follows (held, or applied already).
  deliver(mbuf, payload);
  rte_pktmbuf_free(mbuf);
  receive_window_.advance();
  ++unacked_;
  for (auto next = receive_window_.take_next(); next.arrived; next = receive_window_.take_next()) {
    if (next.item != nullptr) {
      deliver(next.item, held_payload(next.item));
      rte_pktmbuf_free(next.item);
    }
    ++unacked_;
  }
  const std::uint64_t delay = std::uint64_t{tuning_.ack_delay_us} * tsc_hz_ / 1000000;
  if (unacked_ >= tuning_.ack_every) {
    ack_due_tsc_ = now;
  } else if (ack_due_tsc_ == 0) {
    ack_due_tsc_ = now + delay;
  }
}

// Frames held out of order beyond the stream's share of the receive pool move into frames
// of its own (FrameReserve), so that a long path's holes never leave the device without
// buffers to receive into; the reserve grows with what the holes need. Kept as it came
// when the reserve has none free (asked for, counted).
rte_mbuf* DestinationStream::keepable(rte_mbuf* mbuf) {
  const std::uint32_t held = receive_window_.held() + 1;
  FrameReserve* reserve = queue_.reserve;
  if (reserve == nullptr || held <= reserve->base_frames()) return mbuf;
  rte_mbuf* copy = reserve->alloc(nullptr);
  if (copy == nullptr || rte_pktmbuf_tailroom(copy) < rte_pktmbuf_pkt_len(mbuf)) {
    if (copy != nullptr) rte_pktmbuf_free(copy);
    ++counters_.mbuf_exhausted;
    reserve->ask(held + 2 * tuning_.burst);
    return mbuf;
  }
  const std::uint32_t bytes = rte_pktmbuf_pkt_len(mbuf);
  auto* to = rte_pktmbuf_mtod(copy, std::byte*);
  const void* from = rte_pktmbuf_read(mbuf, 0, bytes, to);  // copies a chain into `to` itself
  if (from != to) std::memcpy(to, from, bytes);
  copy->data_len = static_cast<std::uint16_t>(bytes);
  copy->pkt_len = bytes;
  rte_pktmbuf_free(mbuf);
  ++counters_.held_in_reserve;
  return copy;
}

void DestinationStream::on_fragment(rte_mbuf* mbuf, const ReceivedFrame& frame, std::uint64_t now) {
  ++counters_.fragments_received;
  if (!admit(mbuf, frame.seq, now)) return;
  if (receive_window_.arrived(frame.seq)) {
    ++counters_.duplicates;  // that frame is here already, whole
    ack_due_tsc_ = now;
    rte_pktmbuf_free(mbuf);
    return;
  }
  rebuilds_.forget_before(receive_window_.next(), [](rte_mbuf* whole) { rte_pktmbuf_free(whole); });
  Rebuilds::Rebuild* rebuild = rebuilds_.find(frame.seq);
  if (rebuild == nullptr && (rebuild = start_rebuild(mbuf, frame)) == nullptr) {
    rte_pktmbuf_free(mbuf);  // the source sends it again
    return;
  }
  const Rebuilds::Part part = Rebuilds::add(*rebuild, frame.fragment_total, frame.fragment_offset, frame.payload_bytes);
  if (part == Rebuilds::Part::kRefused) {
    ++counters_.drops[static_cast<std::size_t>(FrameDrop::kTruncated)];  // parts of two different frames
    rte_pktmbuf_free(mbuf);
    return;
  }
  // Into the rebuild's own payload (its headers may be laid out otherwise than this part's).
  std::uint32_t at = held_payload(rebuild->item).offset + frame.fragment_offset;
  visit_bytes(mbuf, frame.payload_offset, frame.payload_bytes, [&](const std::byte* piece, std::size_t bytes) {
    write_bytes(rebuild->item, at, piece, static_cast<std::uint32_t>(bytes));
    at += static_cast<std::uint32_t>(bytes);
  });
  rte_pktmbuf_free(mbuf);
  if (part != Rebuilds::Part::kWhole) return;
  rte_mbuf* whole = rebuilds_.take(*rebuild);
  on_data(whole, held_payload(whole), frame.seq, 0, now);
}

DestinationStream::Rebuilds::Rebuild* DestinationStream::start_rebuild(const rte_mbuf* part, const ReceivedFrame& frame) {
  const std::uint32_t headers = frame.payload_offset;  // all in the first segment (parse_frame)
  // A chain when the port's buffers are smaller than a frame.
  rte_mbuf* whole = rebuilds_.full() ? nullptr : alloc_packet(queue_.pool, headers + frame.fragment_total);
  if (whole == nullptr) {
    ++(rebuilds_.full() ? counters_.reassembly_full : counters_.mbuf_exhausted);
    return nullptr;
  }
  if (rte_pktmbuf_data_len(whole) < headers) {
    ++counters_.drops[static_cast<std::size_t>(FrameDrop::kMultiSegment)];  // buffers too small for headers
    rte_pktmbuf_free(whole);
    return nullptr;
  }
  std::memcpy(rte_pktmbuf_mtod(whole, std::byte*), rte_pktmbuf_mtod(part, const std::byte*), headers);
  FrameHeader header;
  std::memcpy(&header, rte_pktmbuf_mtod_offset(whole, const std::byte*, headers - sizeof header), sizeof header);
  header.payload_bytes.set(frame.fragment_total);
  header.flags.set(0);
  std::memcpy(rte_pktmbuf_mtod_offset(whole, std::byte*, headers - sizeof header), &header, sizeof header);
  Rebuilds::Rebuild* rebuild = rebuilds_.start(frame.seq, frame.fragment_total, whole);
  if (rebuild == nullptr) {
    ++counters_.drops[static_cast<std::size_t>(FrameDrop::kTruncated)];  // longer than any frame rebuilds
    rte_pktmbuf_free(whole);
  }
  return rebuild;
}

void DestinationStream::answer_probe(const ReceivedFrame& frame) {
  send(FrameFields{.type = FrameType::kProbeAck, .stream = index_, .session = session_, .seq = frame.seq},
       [&](std::byte* payload) {
         ProbeAckPayload ack{};
         ack.received_ip_bytes.set(frame.ip_bytes);
         std::memcpy(payload, &ack, sizeof ack);
         return static_cast<std::uint16_t>(sizeof ack);
       });
}

void DestinationStream::send_ack(FrameType type) {
  const auto reported = receive_window_.blocks();
  const FrameFields fields{.type = type,
                           .stream = index_,
                           .session = session_,
                           .seq = type == FrameType::kFinAck ? fin_seq_ : receive_window_.next(),
                           .sack = reported.after_next,
                           .window = receive_window_.advertised()};
  const bool sent = send(fields, [&](std::byte* payload) {
    for (std::size_t b = 0; b < reported.count; ++b) {
      SackBlock block{};
      block.base.set(reported.base[b]);
      block.received.set(reported.received[b]);
      std::memcpy(payload + b * sizeof block, &block, sizeof block);
    }
    return static_cast<std::uint16_t>(reported.count * sizeof(SackBlock));
  });
  if (!sent) return;  // ack_due_tsc_ stays: retried next poll
  ++counters_.acks_sent;
  unacked_ = 0;
  ack_due_tsc_ = 0;
}

}  // namespace pagewire::transport
