#include "pagewire/transport/session.hpp"

#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/handshake.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstring>
#include <optional>
#include <random>
#include <string>

namespace pagewire::transport {

namespace {



std::uint64_t ms_to_tsc(std::uint64_t ms) { return ms * rte_get_tsc_hz() / 1000; }


// Control frames go on queue 0, from the control thread, before the streams run (or from
// stream 0's core through the Responder, afterwards).
bool send_control(const QueueRef& queue, const Path& path, const FrameFields& fields, const void* payload,
                  std::uint16_t payload_bytes, std::uint16_t pad_to_ip_bytes = 0) {
  rte_mbuf* mbuf = rte_pktmbuf_alloc(queue.pool);
  if (mbuf == nullptr) return false;
  if (payload_bytes > 0) std::memcpy(frame_payload(mbuf), payload, payload_bytes);
  finish_frame(mbuf, path, fields, payload_bytes, pad_to_ip_bytes);
  if (rte_eth_tx_burst(queue.port, queue.queue, &mbuf, 1) == 0) {
    rte_pktmbuf_free(mbuf);
    return false;
  }
  return true;
}

// Receives control frames on queue 0 until `handle` returns true or the deadline passes.
// Refused frames are counted in `drops`.
template <typename Handle>
bool await_control(const QueueRef& queue, const Path& path, std::uint16_t streams, std::uint32_t session,
                   std::uint64_t deadline, StreamCounters* counters, Handle&& handle) {
  rte_mbuf* burst[32];
  while (rte_rdtsc() < deadline) {
    const std::uint16_t n = rte_eth_rx_burst(queue.port, queue.queue, burst, 32);
    bool done = false;
    for (std::uint16_t i = 0; i < n; ++i) {
      if (answer_arp(burst[i], path.local, queue)) {
        rte_pktmbuf_free(burst[i]);
        continue;
      }
      const ReceivedFrame frame = parse_frame(burst[i], path, streams, session);
      if (frame.drop != FrameDrop::kNone) ++counters->drops[static_cast<std::size_t>(frame.drop)];
      if (!done && frame.drop == FrameDrop::kNone) done = handle(frame, burst[i]);
      rte_pktmbuf_free(burst[i]);
    }
    if (done) return true;
    // Control path: waiting here must not take a core from the data path or from the
    // peer's work (on a shared machine, the destination computing its digest).
    if (n == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return false;
}

// Notices a peer that went quiet: progress is any change in a number the caller sums
// (acknowledgements, frames).
class SilenceWatch {
 public:
  explicit SilenceWatch(std::uint64_t limit_tsc) : limit_(limit_tsc), since_(rte_rdtsc()) {}

  // True once `progress` has not changed for longer than the limit.
  bool expired(std::uint64_t progress, std::uint64_t now) {
    if (progress != last_) {
      last_ = progress;
      since_ = now;
      return false;
    }
    return now - since_ > limit_;
  }

 private:
  std::uint64_t limit_;
  std::uint64_t since_;
  std::uint64_t last_ = 0;
};

template <typename Stream>
std::vector<const PublishedCounters*> published_of(const std::vector<Stream>& streams) {
  std::vector<const PublishedCounters*> published;
  for (const auto& stream : streams) published.push_back(&stream.published());
  return published;
}

std::uint32_t new_session_id() {
  std::random_device random;
  std::uint32_t id = 0;
  while (id == 0) id = random();
  return id;
}

}  // namespace

// ---- Source ----------------------------------------------------------------------------

Result<std::unique_ptr<SourceSession>> SourceSession::connect(const SessionConfig& requested, const Port& port,
                                                              const std::byte* region) {
  SessionConfig config = requested;
  if (config.streams == 0 || config.streams > port.queues()) {
    return make_error("streams: " + std::to_string(config.streams) + " requested, port " + port.name() +
                      " has " + std::to_string(port.queues()) + " queue pairs");
  }
  if (config.region_pages == 0 || config.region_pages >= kMaxRegionPages) {
    return make_error("region: expected 1 to 2^47 pages, got " + std::to_string(config.region_pages));
  }
  const QueueRef control{port.id(), 0, port.pool()};
  const std::uint32_t session = new_session_id();
  StreamCounters control_counters;
  if (is_zero_mac(config.path.peer.mac)) {
    auto mac = resolve_mac(control, config.path.local, config.next_hop_ip != 0 ? config.next_hop_ip : config.path.peer.ip);
    if (!mac) return mac.error();
    config.path.peer.mac = *mac;
  }

  // 1. HELLO until HELLO_ACK or REFUSE.
  const HelloPayload hello = make_hello(config, port.mtu());
  std::optional<HelloPayload> answer;
  std::string refused;
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(config.hello_timeout_ms);
  const std::uint64_t first_hello = rte_rdtsc();
  while (!answer && refused.empty() && rte_rdtsc() < deadline) {
    send_control(control, config.path, FrameFields{.type = FrameType::kHello, .stream = 0, .session = session},
                 &hello, sizeof hello);
    await_control(control, config.path, config.streams, session,
                  std::min(deadline, rte_rdtsc() + ms_to_tsc(100)), &control_counters,
                  [&](const ReceivedFrame& frame, const rte_mbuf*) {
                    if (frame.type == FrameType::kHelloAck && frame.payload_bytes >= sizeof(HelloPayload)) {
                      HelloPayload reply;
                      std::memcpy(&reply, frame.payload, sizeof reply);
                      answer = reply;
                      return true;
                    }
                    if (frame.type == FrameType::kRefuse && frame.payload_bytes >= sizeof(RefusePayload)) {
                      RefusePayload refusal;
                      std::memcpy(&refusal, frame.payload, sizeof refusal);
                      refused = refusal_message(refusal);
                      if (refused.empty()) refused = "(no reason given)";
                      return true;
                    }
                    return false;
                  });
  }
  if (!refused.empty()) return make_error("destination refused the session: " + refused);
  if (!answer) {
    return make_error("no answer to HELLO within " + std::to_string(config.hello_timeout_ms) +
                      " ms: is the destination listening, and are the addresses right?");
  }
  // The handshake's round trip, measured from the first HELLO: at least the path's RTT (more
  // if that HELLO was lost). Probes wait for twice it, and the streams start their
  // retransmission timer from three times it rather than from a LAN-sized guess, so a
  // 150 ms path sees neither lost probes nor a burst of spurious retransmissions.
  const std::uint64_t hello_rtt_us = (rte_rdtsc() - first_hello) * 1000000 / rte_get_tsc_hz();
  const std::uint64_t probe_wait_tsc =
      std::max(ms_to_tsc(config.probe_timeout_ms), 2 * hello_rtt_us * rte_get_tsc_hz() / 1000000);
  config.tuning.initial_rto_us = static_cast<std::uint32_t>(std::min<std::uint64_t>(
      std::max<std::uint64_t>(config.tuning.initial_rto_us, 3 * hello_rtt_us), config.tuning.max_rto_us));

  // 2. Path MTU (RFC 8899 in spirit): the largest IP packet both ports accept, confirmed by a
  // padded probe with DF set; otherwise a binary search down to kMinPathMtu.
  std::uint32_t probe_id = 0;
  auto probe = [&](std::uint16_t ip_bytes) {
    for (std::uint32_t attempt = 0; attempt < config.probe_tries; ++attempt) {
      const std::uint32_t id = ++probe_id;
      send_control(control, config.path,
                   FrameFields{.type = FrameType::kProbe, .stream = 0, .session = session, .seq = id}, nullptr, 0,
                   ip_bytes);
      if (await_control(control, config.path, config.streams, session, rte_rdtsc() + probe_wait_tsc,
                        &control_counters, [&](const ReceivedFrame& frame, const rte_mbuf*) {
                          // A late answer to an earlier attempt at this size counts too.
                          if (frame.type != FrameType::kProbeAck || frame.payload_bytes < sizeof(ProbeAckPayload)) {
                            return false;
                          }
                          ProbeAckPayload ack;
                          std::memcpy(&ack, frame.payload, sizeof ack);
                          return frame.seq == id || ack.received_ip_bytes.get() == ip_bytes;
                        })) {
        return true;
      }
    }
    return false;
  };
  auto checked_ceiling = path_mtu_ceiling(*answer, port.mtu());
  if (!checked_ceiling) return checked_ceiling.error();
  const std::uint16_t ceiling = *checked_ceiling;
  std::uint16_t path_mtu = ceiling;
  if (!probe(ceiling)) {
    if (!probe(kMinPathMtu)) {
      return make_error("path MTU: not even " + std::to_string(kMinPathMtu) +
                        "-byte packets reach the destination (probes with DF set were lost)");
    }
    std::uint16_t good = kMinPathMtu, bad = ceiling;
    while (bad - good > 8) {
      const auto middle = static_cast<std::uint16_t>((good + bad) / 2);
      (probe(middle) ? good : bad) = middle;
    }
    path_mtu = good;
  }

  std::unique_ptr<SourceSession> source(new SourceSession());
  source->config_ = config;
  source->region_ = region;
  source->path_mtu_ = path_mtu;
  source->control_counters_ = control_counters;
  source->control_ = control;
  source->session_ = session;
  source->round_pages_.resize(config.streams);
  for (std::uint16_t s = 0; s < config.streams; ++s) {
    pagecodec::EncoderConfig codec{.page_size = config.page_size,
                                   .region_pages = config.region_pages,
                                   .delta_cache_bytes = config.delta_cache_bytes / config.streams,
                                   .policy = config.policy};
    auto encoder = pagecodec::Encoder::create(codec);
    if (!encoder) return encoder.error();
    source->streams_.emplace_back(s, QueueRef{port.id(), s, port.pool()}, config.path, session,
                                  static_cast<std::uint16_t>(payload_for_mtu(path_mtu)), config.tuning,
                                  std::move(encoder).value());
    source->round_pages_[s].reserve(config.region_pages / config.streams + 1);
  }
  source->telemetry_ = std::make_unique<TelemetryRegistration>(
      TelemetryEntry{.session = session, .role = "source", .path_mtu = path_mtu, .streams = published_of(source->streams_)});
  return source;
}

void SourceSession::begin_round(std::span<const std::uint64_t> pages, std::uint32_t generation) {
  for (auto& list : round_pages_) list.clear();
  for (std::uint64_t page : pages) {
    if (page < config_.region_pages) {
      round_pages_[stream_of_page(page, config_.region_pages, config_.streams)].push_back(page);
    }
  }
  for (std::uint16_t s = 0; s < streams_.size(); ++s) streams_[s].assign(round_pages_[s], region_, generation);
}

void SourceSession::begin_finish() {
  for (auto& stream : streams_) stream.finish();
}

Status SourceSession::run_until_idle(std::uint32_t timeout_ms, const std::function<void()>& tick) {
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  const std::uint64_t tick_interval = ms_to_tsc(100);
  std::uint64_t next_tick = rte_rdtsc() + tick_interval;
  SilenceWatch peer(ms_to_tsc(config_.peer_timeout_ms));
  for (;;) {
    bool busy = false;
    const std::uint64_t now = rte_rdtsc();
    std::uint64_t acks = 0;
    for (std::uint16_t s = 0; s < streams_.size(); ++s) {
      busy |= streams_[s].poll(now);
      acks += streams_[s].counters().acks_received;
    }
    if (!busy) return Ok{};
    if (peer.expired(acks, now)) {
      return make_error("the destination acknowledged nothing for " + std::to_string(config_.peer_timeout_ms) +
                        " ms: it is gone or the path is down");
    }
    if (now > deadline) {
      return make_error("source: streams still busy after " + std::to_string(timeout_ms) +
                        " ms (destination gone, or the path lost every frame)");
    }
    if (tick && now > next_tick) {
      tick();
      next_tick = rte_rdtsc() + tick_interval;
    }
  }
}

template <typename Handle>
bool SourceSession::exchange(FrameType request, std::uint32_t timeout_ms, Handle&& handle) {
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  // These run while the guest is paused: repeat a lost request soon, after twice the
  // smoothed RTT (2 ms at least), backing off to 100 ms or 2 RTT.
  const std::uint64_t srtt_us = totals().streams.srtt_us;
  std::uint64_t wait_us = std::max<std::uint64_t>(2000, 2 * srtt_us);
  const std::uint64_t max_wait_us = std::max<std::uint64_t>(100000, 2 * srtt_us);
  for (std::uint32_t id = 1; rte_rdtsc() < deadline; ++id, wait_us = std::min(2 * wait_us, max_wait_us)) {
    send_control(control_, config_.path, FrameFields{.type = request, .stream = 0, .session = session_, .seq = id},
                 nullptr, 0);
    if (await_control(control_, config_.path, config_.streams, session_,
                      std::min(deadline, rte_rdtsc() + wait_us * rte_get_tsc_hz() / 1000000), &control_counters_,
                      [&](const ReceivedFrame& frame, const rte_mbuf*) { return handle(frame); })) {
      return true;
    }
  }
  return false;
}

Result<Digest> SourceSession::verify(std::uint32_t timeout_ms) {
  Digest digest{};
  const bool answered = exchange(FrameType::kVerify, timeout_ms, [&](const ReceivedFrame& frame) {
    if (frame.type != FrameType::kVerifyReply || frame.payload_bytes < sizeof(VerifyPayload)) return false;
    VerifyPayload payload;
    std::memcpy(&payload, frame.payload, sizeof payload);
    std::memcpy(digest.data(), payload.digest, digest.size());
    return true;
  });
  if (!answered) return make_error("the destination did not send its digest within " + std::to_string(timeout_ms) + " ms");
  return digest;
}

Status SourceSession::commit(std::uint32_t timeout_ms) {
  if (!exchange(FrameType::kCommit, timeout_ms,
                [](const ReceivedFrame& frame) { return frame.type == FrameType::kCommitAck; })) {
    return make_error("the destination did not confirm the commit within " + std::to_string(timeout_ms) +
                      " ms: whether it kept its image is unknown");
  }
  return Ok{};
}

void SourceSession::abort(const std::string& reason) {
  const std::string text = reason.substr(0, 200);
  for (int i = 0; i < 3; ++i) {
    send_control(control_, config_.path, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = session_},
                 text.data(), static_cast<std::uint16_t>(text.size()));
  }
}

SessionTotals SourceSession::totals() const {
  SessionTotals totals;
  totals.streams.drops = control_counters_.drops;
  for (const auto& stream : streams_) {
    totals.streams += stream.counters();
    totals.encoded += stream.encoder().counters();
  }
  return totals;
}

// ---- Destination -----------------------------------------------------------------------

// Answers HELLO (a lost HELLO_ACK) and PROBE frames that reach stream 0 once data flows.
class DestinationSession::Responder final : public ControlResponder {
 public:
  Responder(QueueRef queue, const Path& path, std::uint32_t session, HelloPayload hello)
      : queue_(queue), path_(path), session_(session), hello_(hello) {}

  // A VERIFY that came before this is answered now: the source is paused waiting for it.
  void set_verification(const Digest& digest, std::uint64_t region_bytes) {
    std::memcpy(verify_.digest, digest.data(), digest.size());
    verify_.region_bytes.set(region_bytes);
    can_verify_ = true;
    if (early_verify_seq_ != 0) send_verify_reply(early_verify_seq_);
  }
  bool committed() const { return committed_; }
  const std::string& aborted() const { return aborted_; }

  void respond(const ReceivedFrame& frame, std::uint64_t) override {
    if (frame.type == FrameType::kVerify) {
      if (can_verify_) send_verify_reply(frame.seq);
      else early_verify_seq_ = frame.seq;
      return;
    }
    if (frame.type == FrameType::kAbort) {
      aborted_ = "the source aborted the migration: " +
                 std::string(reinterpret_cast<const char*>(frame.payload), std::min<std::size_t>(frame.payload_bytes, 200));
      return;
    }
    if (frame.type == FrameType::kCommit && can_verify_) {
      committed_ = true;
      send_control(queue_, path_,
                   FrameFields{.type = FrameType::kCommitAck, .stream = 0, .session = session_, .seq = frame.seq},
                   nullptr, 0);
      return;
    }
    if (frame.type == FrameType::kHello) {
      send_control(queue_, path_, FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = session_},
                   &hello_, sizeof hello_);
    } else if (frame.type == FrameType::kProbe) {
      ProbeAckPayload ack{};
      ack.received_ip_bytes.set(frame.ip_bytes);
      send_control(queue_, path_,
                   FrameFields{.type = FrameType::kProbeAck, .stream = 0, .session = session_, .seq = frame.seq},
                   &ack, sizeof ack);
    }
  }

 private:
  void send_verify_reply(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kVerifyReply, .stream = 0, .session = session_, .seq = seq},
                 &verify_, sizeof verify_);
  }

  QueueRef queue_;
  Path path_;
  std::uint32_t session_;
  HelloPayload hello_;
  VerifyPayload verify_{};
  std::uint32_t early_verify_seq_ = 0;
  bool can_verify_ = false;
  bool committed_ = false;
  std::string aborted_;
};

DestinationSession::~DestinationSession() = default;

Result<std::unique_ptr<DestinationSession>> DestinationSession::accept(const SessionConfig& requested, const Port& port,
                                                                       std::byte* region) {
  SessionConfig config = requested;
  const bool learn_peer_mac = is_zero_mac(config.path.peer.mac);
  if (config.streams == 0 || config.streams > port.queues()) {
    return make_error("streams: " + std::to_string(config.streams) + " requested, port " + port.name() +
                      " has " + std::to_string(port.queues()) + " queue pairs");
  }
  if (config.region_pages == 0 || config.region_pages >= kMaxRegionPages) {
    return make_error("region: expected 1 to 2^47 pages, got " + std::to_string(config.region_pages));
  }
  const QueueRef control{port.id(), 0, port.pool()};
  std::uint32_t session = 0;
  std::optional<Refusal> refusal;
  StreamCounters control_counters;
  std::uint64_t source_pages = 0;  // the source splits its pages between streams by its own region
  const bool heard = await_control(control, config.path, config.streams, 0,
                                   rte_rdtsc() + ms_to_tsc(config.hello_timeout_ms), &control_counters,
                                   [&](const ReceivedFrame& frame, const rte_mbuf* mbuf) {
                                     if (frame.type != FrameType::kHello || frame.payload_bytes < sizeof(HelloPayload)) {
                                       return false;
                                     }
                                     if (learn_peer_mac) {  // the last hop: the source, or a router
                                       config.path.peer.mac = rte_pktmbuf_mtod(mbuf, const rte_ether_hdr*)->src_addr;
                                     }
                                     HelloPayload hello;
                                     std::memcpy(&hello, frame.payload, sizeof hello);
                                     session = frame.session;
                                     source_pages = hello.region_pages.get();
                                     refusal = check_hello(hello, config);
                                     return true;
                                   });
  if (!heard) {
    return make_error("no HELLO within " + std::to_string(config.hello_timeout_ms) + " ms");
  }
  if (refusal) {
    RefusePayload payload{};
    payload.reason.set(static_cast<std::uint16_t>(refusal->reason));
    std::snprintf(payload.message, sizeof payload.message, "%s", refusal->message.c_str());
    for (int i = 0; i < 3; ++i) {  // unacknowledged: say it a few times
      send_control(control, config.path, FrameFields{.type = FrameType::kRefuse, .stream = 0, .session = session},
                   &payload, sizeof payload);
    }
    return make_error("refused the source's session: " + refusal->message);
  }

  std::unique_ptr<DestinationSession> destination(new DestinationSession());
  destination->config_ = config;
  destination->control_counters_ = control_counters;
  destination->generations_.assign(config.region_pages, 0);
  const HelloPayload hello = make_hello(config, port.mtu());
  destination->responder_ = std::make_unique<Responder>(control, config.path, session, hello);
  for (std::uint16_t s = 0; s < config.streams; ++s) {
    auto decoder = pagecodec::Decoder::create(config.page_size, config.region_pages);
    if (!decoder) return decoder.error();
    destination->streams_.emplace_back(s, QueueRef{port.id(), s, port.pool()}, config.path, session, config.tuning,
                                       std::move(decoder).value(), region, destination->generations_.data(),
                                       max_record_bytes(config), s == 0 ? destination->responder_.get() : nullptr,
                                       first_page_of_stream(s, source_pages, config.streams),
                                       first_page_of_stream(static_cast<std::uint16_t>(s + 1), source_pages,
                                                            config.streams));
  }
  destination->telemetry_ = std::make_unique<TelemetryRegistration>(TelemetryEntry{
      .session = session, .role = "destination", .path_mtu = 0, .streams = published_of(destination->streams_)});
  send_control(control, config.path, FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = session}, &hello,
               sizeof hello);
  return destination;
}

bool DestinationSession::finished() const {
  return std::all_of(streams_.begin(), streams_.end(), [](const auto& s) { return s.finished(); });
}

Status DestinationSession::run_until_finished(std::uint32_t timeout_ms) {
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  SilenceWatch peer(ms_to_tsc(config_.peer_timeout_ms));
  for (;;) {
    bool busy = false;
    const std::uint64_t now = rte_rdtsc();
    std::uint64_t frames = 0;
    for (std::uint16_t s = 0; s < streams_.size(); ++s) {
      busy |= streams_[s].poll(now);
      if (streams_[s].failed()) return make_error("destination " + streams_[s].failure());
      frames += streams_[s].counters().frames_received + streams_[s].counters().duplicates;
    }
    if (peer.expired(frames, now) && busy) {
      return make_error("the source sent nothing for " + std::to_string(config_.peer_timeout_ms) +
                        " ms: it is gone or the path is down");
    }
    if (!responder_->aborted().empty()) return make_error(responder_->aborted());
    if (!busy) return Ok{};
    if (now > deadline) {
      return make_error("destination: no FIN on every stream within " + std::to_string(timeout_ms) + " ms");
    }
  }
}

void DestinationSession::linger() {
  SilenceWatch line(ms_to_tsc(100));
  const std::uint64_t give_up = rte_rdtsc() + ms_to_tsc(2000);
  for (std::uint64_t now = rte_rdtsc(); now < give_up; now = rte_rdtsc()) {
    std::uint64_t frames = 0;
    for (auto& stream : streams_) {
      stream.poll(now);
      frames += stream.counters().frames_received + stream.counters().duplicates + stream.counters().acks_sent;
    }
    if (line.expired(frames, now)) return;
  }
}

Status DestinationSession::await_commit(const Digest& digest, std::uint64_t region_bytes, std::uint32_t timeout_ms) {
  responder_->set_verification(digest, region_bytes);
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  while (!responder_->committed()) {
    if (!responder_->aborted().empty()) return make_error(responder_->aborted());
    const std::uint64_t now = rte_rdtsc();
    if (now > deadline) {
      return make_error("no commit from the source within " + std::to_string(timeout_ms) +
                        " ms: the image must be discarded");
    }
    // Keep every stream answering: a lost FIN_ACK is asked for again, VERIFY and COMMIT
    // arrive on stream 0.
    for (auto& stream : streams_) stream.poll(now);
  }
  return Ok{};
}

SessionTotals DestinationSession::totals() const {
  SessionTotals totals;
  totals.streams.drops = control_counters_.drops;
  for (const auto& stream : streams_) {
    totals.streams += stream.counters();
    totals.decoded += stream.decoder().counters();
  }
  return totals;
}

}  // namespace pagewire::transport
