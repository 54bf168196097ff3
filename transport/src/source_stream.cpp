// SourceStream: construction, the poll loop, what arrives (ACKs, RESEND, probe answers,
// ABORT), the send window and the token bucket, transmitting new frames, and the FIN.
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/stream.hpp"
#include "source_stream_shared.hpp"

namespace pagewire::transport {

using namespace source_stream;

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
      peer_window_(window_.capacity()),
      timer_({.initial = us_to_tsc(tuning.initial_rto_us, tsc_hz_),
              .floor = us_to_tsc(tuning.min_rto_us, tsc_hz_),
              .ceiling = us_to_tsc(tuning.max_rto_us, tsc_hz_),
              .ack_delay = us_to_tsc(tuning.ack_delay_us, tsc_hz_)}),
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
  encoder_.cut_raw_for(payload_bytes);
  clear_payload_.resize(payload_bytes);
  counters_.path_mtu = path_mtu_;
}

SourceStream::~SourceStream() {
  window_.release_all([](rte_mbuf* mbuf) { rte_pktmbuf_free(mbuf); });
}

void SourceStream::assign(std::span<const std::uint64_t> pages, const pagecodec::PageMap* memory,
                          std::uint32_t generation, bool stable) {
  pages_ = pages;
  memory_ = memory;
  generation_ = generation;
  encoder_.begin_round(pages);
  by_reference_ = stable && tuning_.zero_copy && queue_.references && crypto_ == nullptr;
}

void SourceStream::serve_page_requests(std::uint64_t first_page, std::uint64_t end_page) {
  requests_.begin(pages_, first_page, end_page);
  encoder_.stop_building_on_receiver();
}

void SourceStream::finish() { fin_wanted_ = true; }

bool SourceStream::poll(std::uint64_t now) {
  poll_owner_.note(rte_lcore_id());
  receive(now);
  if (search_ && now - probe_sent_tsc_ > std::max(2 * timer_.srtt(), timer_.rto())) {
    mtu_search_step(search_->on_unanswered(), now);
  }
  if (!search_ && path_mtu_ < initial_mtu_ && raise_due_tsc_ != 0 && now >= raise_due_tsc_) {
    // The old size first, never below what passes now.
    start_mtu_search(PathMtuSearch(kMinPathMtu, initial_mtu_, path_mtu_, PathMtuSearch::Start::kTop, kProbeTries),
                     false, now);
  }
  if (pages_.empty() && !resend_.empty()) start_resend();
  if (window_.holes_waiting()) repair_holes(now);
  retransmit_due(now);
  transmit(now);
  const bool data_left = pages_left() || !staged_.empty() || !window_.empty();
  if (!data_left && fin_wanted_ && !fin_acked_) send_fin(now);
  // A search after a black hole is part of repairing the stream; one looking for a larger
  // MTU again is not worth holding a round (or the switchover) for.
  const bool busy = data_left || (fin_wanted_ && !fin_acked_) || (search_ && search_after_loss_);
  follow_live_rate_cap();
  if (measures_link_ && link_rate_.on_poll(now, acked_bytes_, held_by_path_, timer_.srtt())) {
    encoder_.set_measured_link_rate(link_rate_.bytes_per_second());
  }
  if (publish_schedule_.due(now, !busy)) {
    published_->publish({.stream = counters_, .pages = encoder_.counters().pages});
    publish_schedule_.published(now, !busy, tsc_hz_);
  }
  return busy;
}

namespace {

// The u64 pages a RESEND or PAGE_REQUEST lists (ResendPayload), each handed to `take`;
// false when the payload cannot even hold its header. A count past the payload is cut to it.
template <typename Take>
bool for_each_listed_page(const ReceivedFrame& frame, Take&& take) {
  ResendPayload header;
  if (frame.payload_bytes < sizeof header) return false;
  std::memcpy(&header, frame.payload, sizeof header);
  const std::size_t count =
      std::min<std::size_t>(header.count.get(), (frame.payload_bytes - sizeof header) / sizeof(le64));
  for (std::size_t i = 0; i < count; ++i) {
    le64 page;
    std::memcpy(&page, frame.payload + sizeof header + i * sizeof page, sizeof page);
    take(page.get());
  }
  return true;
}

}  // namespace

void SourceStream::take_resend(const ReceivedFrame& frame) {
  if (fin_acked_) {
    ++counters_.drops[static_cast<std::size_t>(FrameDrop::kOutOfTurn)];  // a late repeat: those pages came
    return;
  }
  const bool listed = for_each_listed_page(frame, [this](std::uint64_t page) {
    // Hostile input: a page outside the region is ignored (the encoder would refuse it).
    if (page >= encoder_.config().region_pages || resend_.size() == kMaxResendPages) return;
    encoder_.forget(page);
    resend_.push_back(page);
  });
  if (!listed) return;
  ++counters_.resend_requests;
  fin_sent_tsc_ = 0;  // a FIN already out no longer ends the stream: send a new one after
}

// Postcopy: the destination's guest touched these pages. Hostile input like RESEND's: pages
// outside the round are counted and ignored, and the queue is bounded (PageRequests).
void SourceStream::take_page_request(const ReceivedFrame& frame) {
  const bool listed = for_each_listed_page(frame, [this](std::uint64_t page) {
    const PageRequests::Take take = requests_.ask(page, pages_);
    if (take == PageRequests::Take::kQueued) ++counters_.pages_requested;
    if (take == PageRequests::Take::kNotInRound || take == PageRequests::Take::kFull) ++counters_.page_requests_refused;
  });
  if (listed) ++counters_.page_requests;
  else ++counters_.drops[static_cast<std::size_t>(FrameDrop::kTruncated)];
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
  for (std::uint64_t page : resending_) requests_.forget(page);  // sent on request, maybe: again
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
    } else {
      take(frame, now);
    }
    rte_pktmbuf_free(burst[i]);
  }
}

void SourceStream::take(const ReceivedFrame& frame, std::uint64_t now) {
  if (frame.stream != index_) {
    ++counters_.drops[static_cast<std::size_t>(FrameDrop::kWrongPort)];
  } else if (frame.type == FrameType::kAck) {
    on_ack(frame, now);
  } else if (frame.type == FrameType::kFinAck) {
    if (fin_wanted_ && frame.seq == window_.next()) fin_acked_ = true;
    else ++counters_.drops[static_cast<std::size_t>(FrameDrop::kOutOfTurn)];  // for an earlier FIN
  } else if (frame.type == FrameType::kResend) {
    take_resend(frame);
  } else if (frame.type == FrameType::kPageRequest) {
    take_page_request(frame);
  } else if (frame.type == FrameType::kProbeAck) {
    on_probe_ack(frame, now);
  } else if (frame.type == FrameType::kAbort) {
    destination_abort_->set(std::string_view(reinterpret_cast<const char*>(frame.payload),
                                             std::min<std::size_t>(frame.payload_bytes, 200)));
  } else {
    // An answer whose exchange is over (a repeated VERIFY_REPLY, COMMIT_ACK, HELLO_ACK...),
    // or a destination-bound frame.
    const FrameDrop drop = taken_by_source(frame.type) ? FrameDrop::kOutOfTurn : FrameDrop::kWrongDirection;
    ++counters_.drops[static_cast<std::size_t>(drop)];
  }
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

// Frames in flight the path allows (see StreamTuning::window_frames).
std::uint32_t SourceStream::send_window() const {
  const std::uint32_t slots = window_.capacity();
  const std::uint32_t cap = tuning_.window_frames != 0 ? std::min(tuning_.window_frames, slots) : slots;
  if (!pacing_on_ && requests_.serving() && tuning_.window_frames == 0) {
    // Postcopy: a page the destination's guest waits for queues behind every frame in
    // flight. Without congestion control (a LAN, a memory link: a round trip of
    // microseconds) a megabyte keeps the path busy, where the full window queues up to
    // 9 MB: milliseconds for each fault.
    return std::clamp<std::uint32_t>(kPostcopyInFlightBytes / frame_bytes_, 16, slots);
  }
  if (!pacing_on_) return tuning_.window_frames != 0 ? cap : std::min(StreamTuning::kUncontrolledWindowFrames, slots);
  return std::clamp<std::uint32_t>(static_cast<std::uint32_t>(pacing_.window_bytes() / frame_bytes_), 1, cap);
}

// A frame to build into. None free: counted, and the stream asks its reserve for room for
// what it holds and a burst more, which the control thread adds (FrameReserve).
rte_mbuf* SourceStream::alloc_frame() {
  rte_mbuf* mbuf = queue_.reserve != nullptr ? queue_.reserve->alloc(queue_.pool) : rte_pktmbuf_alloc(queue_.pool);
  if (mbuf != nullptr) return mbuf;
  ++counters_.mbuf_exhausted;
  if (queue_.reserve != nullptr) queue_.reserve->ask(window_.outstanding() + 2u * kMaxBurst);
  return nullptr;
}

void SourceStream::transmit(std::uint64_t now) {
  // Frames built earlier but refused by a full TX queue or the rate limit go first.
  while (!window_.all_transmitted()) {
    InFlight& entry = window_.first_unsent();
    if (!send_held(entry.item, now)) return;
    stamp_sent(entry, now);
    window_.transmitted(now);
  }
  // New frames go out as one burst; the device may take fewer, the rest wait unsent.
  rte_mbuf* burst[kMaxBurst];
  std::uint16_t built = 0;
  const std::uint32_t window = send_window();
  held_by_path_ = false;
  while (built < std::min<std::uint16_t>(tuning_.burst, kMaxBurst)) {
    if (window_.outstanding() >= peer_window_ || window_.in_flight() >= window) {
      held_by_path_ = true;  // the path (or the receiver) takes less than we could send
      break;
    }
    rte_mbuf* mbuf = encode_into_frame();
    if (mbuf == nullptr) mbuf = frame_from_staging();
    if (mbuf == nullptr) {
      // Nothing more to send with room in the window: the next rate samples are the
      // sender's, not the path's.
      if (pacing_on_ && !pages_left()) pacing_.on_app_limited(inflight_bytes());
      break;
    }
    window_.push(mbuf, static_cast<std::uint16_t>(rte_pktmbuf_pkt_len(mbuf)));
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
  for (std::uint16_t i = 0; i < sent; ++i) {
    stamp_sent(window_.first_unsent(), now);
    window_.transmitted(now);
  }
  counters_.peak_in_flight = std::max<std::uint64_t>(counters_.peak_in_flight, window_.sent_in_flight());
}

void SourceStream::send_fin(std::uint64_t now) {
  if (fin_sent_tsc_ != 0 && now - fin_sent_tsc_ < timer_.rto()) return;
  const FrameFields fin{.type = FrameType::kFin, .stream = index_, .session = session_, .seq = window_.next()};
  if (send_alone(fin, no_payload) != SendResult::kSent) return;
  ++counters_.frames_sent;
  fin_sent_tsc_ = now;
}

}  // namespace pagewire::transport
