#include "pagewire/transport/session.hpp"

#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/handshake.hpp"
#include "window_growth.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <string>

namespace pagewire::transport {

namespace {



std::uint64_t ms_to_tsc(std::uint64_t ms) { return ms * rte_get_tsc_hz() / 1000; }


// Control frames go on queue 0, from the control thread, before the streams run (or from
// stream 0's core through the Responder, afterwards).
// `crypto` seals the frame (every frame after HELLO_ACK in a session with a key).
bool send_control(const QueueRef& queue, const Path& path, const FrameFields& fields, const void* payload,
                  std::uint16_t payload_bytes, FrameCrypto* crypto, std::uint16_t pad_to_ip_bytes = 0) {
  rte_mbuf* mbuf = rte_pktmbuf_alloc(queue.pool);
  if (mbuf == nullptr) return false;
  if (payload_bytes > 0) std::memcpy(frame_payload(mbuf), payload, payload_bytes);
  finish_frame(mbuf, path, fields, payload_bytes, pad_to_ip_bytes, crypto);
  if (rte_eth_tx_burst(queue.port, queue.queue, &mbuf, 1) == 0) {
    rte_pktmbuf_free(mbuf);
    return false;
  }
  return true;
}

// Receives control frames on queue 0 until `handle` returns true or the deadline passes.
// Frames that fail parsing are counted in `counters`; `handle` gets the rest unopened
// (accept() opens them with the key of the session they name).
template <typename Handle>
bool receive_control(const QueueRef& queue, const Path& path, std::uint16_t streams, std::uint32_t session,
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
      ReceivedFrame frame = parse_frame(burst[i], path, streams, session);
      if (frame.drop != FrameDrop::kNone) ++counters->drops[static_cast<std::size_t>(frame.drop)];
      if (!done && frame.drop == FrameDrop::kNone) done = handle(frame, &burst[i]);
      rte_pktmbuf_free(burst[i]);
    }
    if (done) return true;
    // Control path: waiting here must not take a core from the data path or from the
    // peer's work (on a shared machine, the destination computing its digest).
    if (n == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return false;
}

// receive_control() for frames of our own session: opened (authenticated, decrypted) with
// `crypto` first.
template <typename Handle>
bool await_control(const QueueRef& queue, const Path& path, std::uint16_t streams, std::uint32_t session,
                   std::uint64_t deadline, StreamCounters* counters, FrameCrypto* crypto, Handle&& handle) {
  return receive_control(queue, path, streams, session, deadline, counters,
                         [&](ReceivedFrame& frame, rte_mbuf** mbuf) {
                           const FrameDrop drop = open_frame(mbuf, &frame, crypto, queue.pool);
                           if (drop != FrameDrop::kNone) {
                             ++counters->drops[static_cast<std::size_t>(drop)];
                             return false;
                           }
                           return handle(frame, *mbuf);
                         });
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

// For an error about a silent peer: what the port itself says about its link.
std::string link_note(std::uint16_t port) {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_DOWN) {
    return " (this port's link is down)";
  }
  return "";
}

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

// What both ends check before a handshake: a region the protocol can address, and a queue
// pair per stream, each stream's frames steered to its own queue. A port with fewer queue
// pairs than the streams asked for carries as many streams as it has: the handshake then
// settles on the smaller offer of the two ends. Returns this end's offer.
Result<std::uint16_t> prepare_port(const SessionConfig& config, const Port& port) {
  if (config.streams == 0) return make_error(ErrorCode::kConfiguration, "streams: at least one is needed");
  if (config.region_pages == 0 || config.region_pages >= kMaxRegionPages) {
    return make_error(ErrorCode::kConfiguration, "region: expected 1 to 2^47 pages, got " + std::to_string(config.region_pages));
  }
  const std::uint16_t offered = std::min(config.streams, port.queues());
  if (!config.stream_lcores.empty() && config.stream_lcores.size() < offered) {
    return make_error(ErrorCode::kConfiguration, "stream lcores: " + std::to_string(config.stream_lcores.size()) + " for " +
                      std::to_string(offered) + " streams; each stream needs an lcore of its own");
  }
  if (Status steered = port.steer_streams(config.path.local, offered); !steered) return steered.error();
  return offered;
}

// For an error about a handshake that never completed: what arrived and was dropped, and
// why (frames of ours that a path or a port mangles end here, not in silence).
std::string drops_note(const StreamCounters& counters) {
  std::string note;
  for (std::size_t d = 0; d < counters.drops.size(); ++d) {
    if (counters.drops[d] == 0 || d == static_cast<std::size_t>(FrameDrop::kNone)) continue;
    note += (note.empty() ? " (frames dropped: " : ", ") + std::to_string(counters.drops[d]) + " " +
            std::string(to_string(static_cast<FrameDrop>(d)));
  }
  return note.empty() ? note : note + ")";
}

// Why a session runs fewer streams than were asked for; empty when it runs them all.
std::string fewer_streams_note(std::uint16_t asked, std::uint16_t agreed, const Port& port) {
  if (agreed == asked) return "";
  std::string note = std::to_string(agreed) + " of the " + std::to_string(asked) + " streams asked for: ";
  if (port.queues() < asked) {
    note += "port " + port.name() + " has " + std::to_string(port.queues()) + " queue pairs";
    if (agreed < port.queues()) note += ", and the peer takes " + std::to_string(agreed);
  } else {
    note += "the peer takes " + std::to_string(agreed);
  }
  return note;
}

// The stream cores, when the configuration names them: one lcore per stream the session runs.
Result<std::unique_ptr<StreamRunner>> launch_runner(const SessionConfig& config) {
  if (config.stream_lcores.empty()) return std::unique_ptr<StreamRunner>{};
  return StreamRunner::launch(std::span(config.stream_lcores).first(config.streams), config.runner);
}

// Anything a stream's traffic changes: what IdleBackoff watches.
std::uint64_t traffic(const StreamCounters& counters) {
  return counters.frames_sent + counters.frames_received + counters.acks_sent + counters.acks_received;
}

// A stream core's task for a round (source) or for the rounds up to FIN (destination):
// poll until the stream has nothing left, or the control thread calls the core back.
template <typename Stream>
void poll_until_done(Stream& stream, const StreamRunner& runner) {
  IdleBackoff backoff(runner.options().idle_sleep_us);
  while (!runner.stop_requested() && stream.poll(rte_rdtsc())) backoff.after_poll(traffic(stream.counters()));
}

// Calls `tick` (if any) about every 100 ms of a control loop.
class Ticker {
 public:
  explicit Ticker(const std::function<void()>& tick) : tick_(tick), next_(rte_rdtsc() + interval()) {}
  void at(std::uint64_t now) {
    if (!tick_ || now <= next_) return;
    tick_();
    next_ = rte_rdtsc() + interval();
  }

 private:
  static std::uint64_t interval() { return rte_get_tsc_hz() / 10; }
  const std::function<void()>& tick_;
  std::uint64_t next_;
};

// How a control thread waits for the stream cores: it looks again after 20 us, then twice as
// long each time up to 1 ms. The switchover's short phases end within microseconds of
// their last frame, and a round of seconds costs a thousand wake-ups a second, not tens of
// thousands (each one preempts a stream core where lcores share CPUs).
class ControlWait {
 public:
  void pause() {
    std::this_thread::sleep_for(interval_);
    interval_ = std::min(interval_ * 2, std::chrono::microseconds(1000));
  }

 private:
  std::chrono::microseconds interval_{20};
};

// The streams' published counters only: the control frames' drops change on stream 0's
// core during an exchange and are read once it is done (totals()).
template <typename Stream>
SessionTotals published_totals_of(const std::vector<Stream>& streams) {
  SessionTotals totals;
  for (const auto& stream : streams) {
    const StreamSnapshot snapshot = stream.published().read();
    totals.streams += snapshot.stream;
    for (std::size_t e = 0; e < snapshot.pages.size(); ++e) totals.encoded.pages[e] += snapshot.pages[e];
  }
  return totals;
}

template <typename Runner>
unsigned lcore_of(const Runner& runner, std::uint16_t s) {
  return runner == nullptr ? LCORE_ID_ANY : runner->lcore(s);
}

}  // namespace

namespace {
// Frames cross a network (or a test middlebox that stands for one), not only memory.
bool crosses_network(const SessionConfig& config, const Port& port) {
  return !port.memory_link() || config.emulated_network;
}
}  // namespace

void apply_udp_checksum(const SessionConfig& config, const Port& port, Path* path) {
  const bool network = crosses_network(config, port);
  path->udp_checksum =
      config.udp_checksum == UdpChecksum::kOn || (config.udp_checksum == UdpChecksum::kAuto && network);
  path->tx_checksum_offload = port.tx_checksum_offload();
}

const char* checksum_note(const Path& path) {
  if (!path.udp_checksum) return "off";
  return path.tx_checksum_offload ? "offloaded" : "software";
}

// ---- Source ----------------------------------------------------------------------------

Result<std::unique_ptr<SourceSession>> SourceSession::connect(const SessionConfig& requested, const Port& port,
                                                              const std::byte* region) {
  SessionConfig config = requested;
  auto offered = prepare_port(config, port);
  if (!offered) return offered.error();
  config.streams = *offered;
  apply_udp_checksum(config, port, &config.path);
  const QueueRef control{port.id(), 0, port.pool()};
  const std::uint32_t session = new_session_id();
  StreamCounters control_counters;
  if (is_zero_mac(config.path.peer.mac)) {
    auto mac = resolve_mac(control, config.path.local, config.next_hop_ip != 0 ? config.next_hop_ip : config.path.peer.ip);
    if (!mac) return mac.error();
    config.path.peer.mac = *mac;
  }

  // 1. HELLO until HELLO_ACK or REFUSE. With a key, the HELLO carries our nonce and proof,
  // and only a HELLO_ACK that proves the same key over our fresh nonce is taken.
  const std::optional<PreSharedKey>& key = config.security.key;
  if (config.security.encrypt && !key) return make_error(ErrorCode::kConfiguration, "encryption needs a pre-shared key (--psk-file)");
  const HelloPayload hello = make_hello(config, port.mtu());
  const Nonce source_nonce = key ? random_nonce() : Nonce{};
  const HelloAuth source_auth = key ? make_source_auth(*key, session, hello, source_nonce) : HelloAuth{};
  std::array<std::byte, sizeof hello + sizeof source_auth> hello_bytes;
  std::memcpy(hello_bytes.data(), &hello, sizeof hello);
  std::memcpy(hello_bytes.data() + sizeof hello, &source_auth, sizeof source_auth);
  const auto hello_size = static_cast<std::uint16_t>(sizeof hello + (key ? sizeof source_auth : 0));
  std::optional<HelloPayload> answer;
  HelloAuth answer_auth{};
  std::uint64_t unproven_answers = 0;
  std::string refused;
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(config.hello_timeout_ms);
  const std::uint64_t first_hello = rte_rdtsc();
  std::uint16_t refuse_reason = 0;
  while (!answer && refused.empty() && rte_rdtsc() < deadline) {
    send_control(control, config.path, FrameFields{.type = FrameType::kHello, .stream = 0, .session = session},
                 hello_bytes.data(), hello_size, nullptr);
    await_control(control, config.path, config.streams, session,
                  std::min(deadline, rte_rdtsc() + ms_to_tsc(100)), &control_counters, nullptr,
                  [&](const ReceivedFrame& frame, const rte_mbuf*) {
                    if (frame.type == FrameType::kHelloAck && frame.payload_bytes >= hello_size) {
                      HelloPayload reply;
                      std::memcpy(&reply, frame.payload, sizeof reply);
                      if (key) {
                        HelloAuth auth;
                        std::memcpy(&auth, frame.payload + sizeof reply, sizeof auth);
                        if (!destination_auth_valid(*key, session, hello, source_auth, reply, auth)) {
                          ++unproven_answers;  // another key, or a forgery: keep listening
                          ++control_counters.drops[static_cast<std::size_t>(FrameDrop::kBadTag)];
                          return false;
                        }
                        answer_auth = auth;
                      }
                      answer = reply;
                      return true;
                    }
                    if (frame.type == FrameType::kRefuse && frame.payload_bytes >= sizeof(RefusePayload)) {
                      RefusePayload refusal;
                      std::memcpy(&refusal, frame.payload, sizeof refusal);
                      refused = refusal_message(refusal);
                      refuse_reason = refusal.reason.get();
                      if (refused.empty()) refused = "(no reason given)";
                      return true;
                    }
                    return false;
                  });
  }
  if (!refused.empty()) {
    return make_error(ErrorCode::kRefused, "destination refused the session: " + refused, refuse_reason);
  }
  if (!answer && unproven_answers > 0) {
    return make_error(ErrorCode::kAuthentication, std::to_string(unproven_answers) +
                      " answers to HELLO failed authentication: the destination's pre-shared key differs from ours");
  }
  if (!answer) {
    Endpoint peer = config.path.peer;
    peer.vlan = config.path.local.vlan;  // one link, one VLAN
    return make_error(ErrorCode::kPeerGone, "no answer to HELLO within " + std::to_string(config.hello_timeout_ms) + " ms from " +
                      endpoint_text(peer) + ": is the destination listening, and are the addresses right?" +
                      drops_note(control_counters));
  }
  if (answer->security.get() != hello.security.get()) {
    return make_error("the destination answered with security options " + std::to_string(answer->security.get()) +
                      ", asked for " + std::to_string(hello.security.get()));
  }
  const std::uint16_t agreed_streams = answer->streams.get();
  if (agreed_streams == 0 || agreed_streams > config.streams) {
    return make_error("the destination answered with " + std::to_string(agreed_streams) + " streams; this source offered " +
                      std::to_string(config.streams));
  }
  config.streams = agreed_streams;
  if (agreed_streams < requested.streams) {
    // Rates are per stream, shares of totals split over the streams asked for: the same
    // totals over fewer streams.
    const double share = static_cast<double>(requested.streams) / agreed_streams;
    config.tuning.rate_bytes_per_second *= share;
    config.policy.adaptive.link_bytes_per_second *= share;
  }
  // Every frame from here on is sealed with keys only the two of us can derive.
  std::vector<std::unique_ptr<FrameCrypto>> crypto;
  if (key) {
    const SessionKeys keys = derive_session_keys(*key, session, source_nonce, nonce_of(answer_auth),
                                                 config.security.encrypt);
    for (std::uint16_t s = 0; s < config.streams; ++s) {
      auto created = FrameCrypto::create(keys, FrameCrypto::Side::kSource);
      if (!created) return created.error();
      crypto.push_back(std::make_unique<FrameCrypto>(std::move(created).value()));
    }
  }
  FrameCrypto* control_crypto = key ? crypto[0].get() : nullptr;
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
  // The shortest probe round trip: unlike the HELLO's, not stretched by a destination that
  // was not listening yet.
  std::uint64_t probe_rtt_tsc = UINT64_MAX;
  auto probe = [&](std::uint16_t ip_bytes) {
    for (std::uint32_t attempt = 0; attempt < config.probe_tries; ++attempt) {
      const std::uint32_t id = ++probe_id;
      const std::uint64_t sent = rte_rdtsc();
      send_control(control, config.path,
                   FrameFields{.type = FrameType::kProbe, .stream = 0, .session = session, .seq = id}, nullptr, 0,
                   control_crypto, ip_bytes);
      if (await_control(control, config.path, config.streams, session, rte_rdtsc() + probe_wait_tsc,
                        &control_counters, control_crypto, [&](const ReceivedFrame& frame, const rte_mbuf*) {
                          // A late answer to an earlier attempt at this size counts too.
                          if (frame.type != FrameType::kProbeAck || frame.payload_bytes < sizeof(ProbeAckPayload)) {
                            return false;
                          }
                          ProbeAckPayload ack;
                          std::memcpy(&ack, frame.payload, sizeof ack);
                          if (frame.seq == id) probe_rtt_tsc = std::min(probe_rtt_tsc, rte_rdtsc() - sent);
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
      return make_error(ErrorCode::kPath, "path MTU: not even " + std::to_string(kMinPathMtu) +
                        "-byte packets reach the destination (probes with DF set were lost)");
    }
    std::uint16_t good = kMinPathMtu, bad = ceiling;
    while (bad - good > 8) {
      const auto middle = static_cast<std::uint16_t>((good + bad) / 2);
      (probe(middle) ? good : bad) = middle;
    }
    path_mtu = good;
  }
  const std::uint64_t path_rtt_us =
      probe_rtt_tsc == UINT64_MAX ? hello_rtt_us : probe_rtt_tsc * 1000000 / rte_get_tsc_hz();
  // The congestion controller's first rate: its initial window per round trip.
  config.tuning.initial_rtt_us = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(path_rtt_us, 10, 1000000));
  const bool network = crosses_network(config, port);
  if (!network && config.policy.adaptive.link_bytes_per_second == 0) {
    // A memory link has no wire to save bytes on: what holds a sender back there is the
    // receiver's core, which deflate would only give more work. Adaptive sends raw.
    config.policy.adaptive.link_bytes_per_second = std::numeric_limits<double>::infinity();
  }
  if (config.tuning.congestion_control == StreamTuning::CongestionControl::kAuto) {
    constexpr std::uint64_t kLanRttUs = 1000;
    // A memory link is shared with no one, however long a busy machine took to answer.
    const bool shared_path = network && (config.next_hop_ip != 0 || path_rtt_us > kLanRttUs);
    config.tuning.congestion_control =
        shared_path ? StreamTuning::CongestionControl::kOn : StreamTuning::CongestionControl::kOff;
  }

  std::unique_ptr<SourceSession> source(new SourceSession());
  source->config_ = config;
  source->streams_note_ = fewer_streams_note(requested.streams, agreed_streams, port);
  source->region_ = region;
  source->path_mtu_ = path_mtu;
  source->control_counters_ = control_counters;
  source->control_ = control;
  source->session_ = session;
  source->crypto_ = std::move(crypto);
  source->round_pages_.resize(config.streams);
  source->region_bytes_ = config.region_pages * config.page_size;
  if (!config.tuning.zero_copy) {
    source->zero_copy_note_ = "off (tuning)";
  } else if (port.reference_pool() == nullptr) {
    source->zero_copy_note_ = "unavailable: port " + port.name() + " cannot send segments that point into guest memory (no TX segment chains, or memif in its own zero-copy mode)";
  } else if (key.has_value()) {
    source->zero_copy_note_ = "unavailable: sealed frames are written, not referenced";
  } else if (Status mapped = port.map_for_dma(region, source->region_bytes_); !mapped) {
    source->zero_copy_note_ = "unavailable: " + mapped.error().message;
  } else {
    source->zero_copy_ = true;
    source->dma_port_ = &port;
  }
  for (std::uint16_t s = 0; s < config.streams; ++s) {
    pagecodec::EncoderConfig codec{.page_size = config.page_size,
                                   .region_pages = config.region_pages,
                                   .delta_cache_bytes = config.delta_cache_bytes / config.streams,
                                   .policy = config.policy};
    auto encoder = pagecodec::Encoder::create(codec);
    if (!encoder) return encoder.error();
    const ReferenceSegments references =
        source->zero_copy_ ? ReferenceSegments{port.reference_pool(), port.reference_info(s)} : ReferenceSegments{};
    source->streams_.emplace_back(s, QueueRef{port.id(), s, port.pool(), references, port.frame_reserve(s)}, config.path, session,
                                  static_cast<std::uint16_t>(payload_for_mtu(path_mtu, key.has_value())),
                                  config.tuning, std::move(encoder).value(), source->crypto(s));
    source->round_pages_[s].reserve(config.region_pages / config.streams + 1);
  }
  source->windows_ = std::make_unique<WindowGrowth>(port, config.streams, config.tuning.window_memory_bytes);
  auto runner = launch_runner(config);
  if (!runner) return runner.error();
  source->runner_ = std::move(runner).value();
  source->telemetry_ = std::make_unique<TelemetryRegistration>(
      TelemetryEntry{.session = session, .role = "source", .path_mtu = path_mtu, .streams = published_of(source->streams_)});
  return source;
}

void SourceSession::begin_round(std::span<const std::uint64_t> pages, std::uint32_t generation, RoundPages kind) {
  for (auto& list : round_pages_) list.clear();
  for (std::uint64_t page : pages) {
    if (page < config_.region_pages) {
      round_pages_[stream_of_page(page, config_.region_pages, config_.streams)].push_back(page);
    }
  }
  for (std::uint16_t s = 0; s < streams_.size(); ++s) {
    streams_[s].assign(round_pages_[s], region_, generation, kind == RoundPages::kStable);
  }
}

SourceSession::~SourceSession() {
  runner_.reset();     // every stream core parked and ended before its stream goes
  telemetry_.reset();  // before the streams whose counters it reads
  streams_.clear();    // frees every frame that points at the region
  if (dma_port_ != nullptr) dma_port_->unmap_for_dma(region_, region_bytes_);
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
  return make_error(ErrorCode::kPeerGone, "the destination acknowledged nothing for " + std::to_string(config_.peer_timeout_ms) +
                    " ms: it is gone or the path is down" + link_note(control_.port));
}

namespace {
Error streams_busy(std::uint32_t timeout_ms) {
  return make_error(ErrorCode::kTimeout, "source: streams still busy after " + std::to_string(timeout_ms) +
                    " ms (destination gone, or the path lost every frame)");
}
}  // namespace

Status SourceSession::poll_here_until_idle(std::uint32_t timeout_ms, const std::function<void()>& tick) {
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  Ticker ticker(tick);
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
  SilenceWatch peer(ms_to_tsc(config_.peer_timeout_ms));
  ControlWait wait;
  while (!runner_->all_done()) {
    const std::uint64_t now = rte_rdtsc();
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
  if (runner_ == nullptr) {
    std::uint64_t next_keepalive = rte_rdtsc();
    while (busy()) {
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
  while (busy()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
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
      answered = await_control(control_, config_.path, config_.streams, session_,
                               std::min(deadline, rte_rdtsc() + wait_us * rte_get_tsc_hz() / 1000000),
                               &control_counters_, crypto(0),
                               [&](const ReceivedFrame& frame, const rte_mbuf*) { return handle(frame); });
    }
  });
  return answered;
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
  if (!answered) return make_error(ErrorCode::kPeerGone, "the destination did not send its digest within " + std::to_string(timeout_ms) + " ms");
  return digest;
}

Status SourceSession::commit(std::uint32_t timeout_ms) {
  std::string refusal;
  bool refused = false;
  const bool answered = exchange(FrameType::kCommit, timeout_ms, [&](const ReceivedFrame& frame) {
    if (frame.type == FrameType::kAbort) {
      refused = true;
      refusal.assign(reinterpret_cast<const char*>(frame.payload), std::min<std::size_t>(frame.payload_bytes, 200));
      return true;
    }
    return frame.type == FrameType::kCommitAck;
  });
  if (!answered) {
    return make_error(ErrorCode::kCommitUnknown, "the destination did not confirm the commit within " +
                                                     std::to_string(timeout_ms) + " ms: whether it kept its image is unknown");
  }
  if (refused) {
    return make_error(ErrorCode::kCommitRefused, "the destination refused the commit: " + refusal);
  }
  return Ok{};
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

// ---- Destination -----------------------------------------------------------------------

// Answers what reaches stream 0 for the session once data flows: HELLO (a lost HELLO_ACK),
// VERIFY, COMMIT, ABORT. Probes each stream answers itself.
// Lives on stream 0's core (or the control thread while no stream is polled), and seals
// with stream 0's FrameCrypto, which belongs to the same queue.
class DestinationSession::Responder final : public ControlResponder {
 public:
  Responder(QueueRef queue, const Path& path, std::uint32_t session, std::vector<std::byte> hello_ack,
            FrameCrypto* crypto)
      : queue_(queue), path_(path), session_(session), hello_ack_(std::move(hello_ack)), crypto_(crypto) {}

  // A VERIFY that came before this is answered now: the source is paused waiting for it.
  void set_verification(const Digest& digest, std::uint64_t region_bytes) {
    std::memcpy(verify_.digest, digest.data(), digest.size());
    verify_.region_bytes.set(region_bytes);
    can_verify_ = true;
    if (early_verify_seq_ != 0) send_verify_reply(early_verify_seq_);
  }
  // The source sent COMMIT; it is acknowledged only once acknowledge() is called.
  bool commit_requested() const { return commit_requested_; }
  // Control thread, while no stream core runs: the commit action is done.
  void acknowledge() {
    commit_acknowledged_ = true;
    send_commit_ack(commit_seq_);
  }
  // Any thread: the source aborted. The reason (aborted()) is written once, before this.
  bool was_aborted() const { return was_aborted_.load(std::memory_order_acquire); }
  const std::string& aborted() const { return aborted_; }
  void send_hello_ack() {
    send_control(queue_, path_, FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = session_},
                 hello_ack_.data(), static_cast<std::uint16_t>(hello_ack_.size()), nullptr);
  }

  void respond(const ReceivedFrame& frame, std::uint64_t) override {
    if (frame.type == FrameType::kVerify) {
      if (can_verify_) send_verify_reply(frame.seq);
      else early_verify_seq_ = frame.seq;
      return;
    }
    if (frame.type == FrameType::kAbort) {
      if (was_aborted()) return;  // the source says it three times; the first is kept
      aborted_ = "the source aborted the migration: " +
                 std::string(reinterpret_cast<const char*>(frame.payload), std::min<std::size_t>(frame.payload_bytes, 200));
      was_aborted_.store(true, std::memory_order_release);
      return;
    }
    if (frame.type == FrameType::kCommit && can_verify_) {
      commit_requested_ = true;
      commit_seq_ = frame.seq;
      // Our answer was lost: the source asks again, and gets the same one.
      if (commit_acknowledged_) send_commit_ack(frame.seq);
      if (!refusal_.empty()) send_refusal(frame.seq);
      return;
    }
    if (frame.type == FrameType::kHello) send_hello_ack();
  }

  // Control thread, while no stream core runs: ABORT in answer to the COMMIT, three times
  // as the source's own abort (a lost one is covered by the others).
  void refuse(const std::string& reason) {
    refusal_ = reason.substr(0, 200);
    for (int i = 0; i < 3; ++i) send_refusal(commit_seq_);
  }

 private:
  void send_refusal(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = session_, .seq = seq},
                 refusal_.data(), static_cast<std::uint16_t>(refusal_.size()), crypto_);
  }
  void send_commit_ack(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kCommitAck, .stream = 0, .session = session_, .seq = seq},
                 nullptr, 0, crypto_);
  }
  void send_verify_reply(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kVerifyReply, .stream = 0, .session = session_, .seq = seq},
                 &verify_, sizeof verify_, crypto_);
  }

  QueueRef queue_;
  Path path_;
  std::uint32_t session_;
  std::vector<std::byte> hello_ack_;  // HelloPayload, then HelloAuth if authenticated
  FrameCrypto* crypto_;
  VerifyPayload verify_{};
  std::uint32_t early_verify_seq_ = 0;
  bool can_verify_ = false;
  bool commit_requested_ = false;
  bool commit_acknowledged_ = false;
  std::string refusal_;  // the commit was refused, and why: repeated to a repeated COMMIT
  std::uint32_t commit_seq_ = 0;
  std::string aborted_;
  std::atomic<bool> was_aborted_{false};
};

DestinationSession::~DestinationSession() {
  runner_.reset();  // every stream core parked and ended before its stream goes
}

namespace {

// A source whose HELLO was answered, while the destination waits for its first sealed
// frame: the proof it holds the key (a replayed HELLO gets this far, and no further).
struct PendingSource {
  std::uint32_t session = 0;
  rte_ether_addr mac{};
  std::uint64_t region_pages = 0;
  std::uint16_t streams = 0;  // the smaller of its offer and ours: what the session runs
  std::vector<std::byte> hello_ack;
  SessionKeys keys;
  std::unique_ptr<FrameCrypto> control_crypto;
};
constexpr std::size_t kMaxPendingSources = 8;

std::vector<std::byte> bytes_of(const HelloPayload& hello, const HelloAuth* auth) {
  std::vector<std::byte> bytes(sizeof hello + (auth != nullptr ? sizeof *auth : 0));
  std::memcpy(bytes.data(), &hello, sizeof hello);
  if (auth != nullptr) std::memcpy(bytes.data() + sizeof hello, auth, sizeof *auth);
  return bytes;
}

void send_refusal(const QueueRef& queue, const Path& path, std::uint32_t session, const Refusal& refusal) {
  RefusePayload payload{};
  payload.reason.set(static_cast<std::uint16_t>(refusal.reason));
  std::snprintf(payload.message, sizeof payload.message, "%s", refusal.message.c_str());
  for (int i = 0; i < 3; ++i) {  // unacknowledged: say it a few times
    send_control(queue, path, FrameFields{.type = FrameType::kRefuse, .stream = 0, .session = session}, &payload,
                 sizeof payload, nullptr);
  }
}

}  // namespace

Result<std::unique_ptr<DestinationSession>> DestinationSession::accept(const SessionConfig& requested, const Port& port,
                                                                       std::byte* region) {
  SessionConfig config = requested;
  const bool learn_peer_mac = is_zero_mac(config.path.peer.mac);
  auto offered = prepare_port(config, port);
  if (!offered) return offered.error();
  config.streams = *offered;
  const std::optional<PreSharedKey>& key = config.security.key;
  if (config.security.encrypt && !key) return make_error(ErrorCode::kConfiguration, "encryption needs a pre-shared key (--psk-file)");
  apply_udp_checksum(config, port, &config.path);
  const QueueRef control{port.id(), 0, port.pool()};
  StreamCounters control_counters;
  const HelloPayload own_hello = make_hello(config, port.mtu());

  // Without a key the first HELLO decides. With one, a HELLO only starts a handshake: the
  // session is the one whose source then seals a frame with the keys (a PROBE), so a
  // stranger's or a replayed HELLO neither takes the destination nor ends the wait.
  std::vector<PendingSource> pending;
  std::optional<PendingSource> chosen;
  std::optional<Refusal> refusal;
  ReceivedFrame first_sealed{};
  receive_control(
      control, config.path, config.streams, 0, rte_rdtsc() + ms_to_tsc(config.hello_timeout_ms), &control_counters,
      [&](ReceivedFrame& frame, rte_mbuf** mbuf) {
        auto count = [&](FrameDrop drop) { ++control_counters.drops[static_cast<std::size_t>(drop)]; };
        if (frame.sealed) {
          auto source = std::find_if(pending.begin(), pending.end(),
                                     [&](const PendingSource& p) { return p.session == frame.session; });
          if (source == pending.end()) {
            count(key ? FrameDrop::kWrongSession : FrameDrop::kSealMismatch);
            return false;
          }
          const FrameDrop drop = open_frame(mbuf, &frame, source->control_crypto.get(), control.pool);
          if (drop != FrameDrop::kNone) {
            count(drop);
            return false;
          }
          first_sealed = frame;
          first_sealed.payload = nullptr;  // the mbuf goes when this returns
          first_sealed.payload_bytes = 0;
          chosen = std::move(*source);
          return true;
        }
        const std::size_t auth_bytes = key ? sizeof(HelloAuth) : 0;
        // Before a session, only HELLO is for us; anything else is counted, as every frame is.
        if (frame.type != FrameType::kHello) {
          count(FrameDrop::kWrongSession);
          return false;
        }
        if (frame.payload_bytes < sizeof(HelloPayload)) {
          count(FrameDrop::kTruncated);
          return false;
        }
        HelloPayload hello;
        std::memcpy(&hello, frame.payload, sizeof hello);
        PendingSource source;
        source.session = frame.session;
        source.mac = rte_pktmbuf_mtod(*mbuf, const rte_ether_hdr*)->src_addr;  // the last hop
        // Bound to a peer MAC (the source's, or the last router's): HELLOs from elsewhere
        // are not for us.
        if (!learn_peer_mac && !rte_is_same_ether_addr(&source.mac, &config.path.peer.mac)) {
          count(FrameDrop::kNotForUs);
          return false;
        }
        source.region_pages = hello.region_pages.get();
        refusal = check_hello(hello, config);
        HelloAuth source_auth{};
        if (!refusal && key) {
          if (frame.payload_bytes < sizeof hello + auth_bytes) {
            refusal = Refusal{RefuseReason::kAuthentication, "HELLO too short for its authentication"};
          } else {
            std::memcpy(&source_auth, frame.payload + sizeof hello, sizeof source_auth);
            if (!source_auth_valid(*key, frame.session, hello, source_auth)) {
              count(FrameDrop::kBadTag);
              refusal = Refusal{RefuseReason::kAuthentication,
                                "authentication failed: the source's pre-shared key differs from the destination's"};
            }
          }
        }
        if (refusal) {
          Path reply_path = config.path;
          if (learn_peer_mac) reply_path.peer.mac = source.mac;
          send_refusal(control, reply_path, frame.session, *refusal);
          // Answered and counted, and the wait goes on: one HELLO that does not fit, a
          // stranger's or a misconfigured source's, must not end a destination that the
          // real source has yet to reach.
          count(FrameDrop::kRefusedHello);
          return false;
        }
        // The session runs the smaller offer; the HELLO_ACK says which.
        source.streams = std::min(hello.streams.get(), config.streams);
        HelloPayload answer = own_hello;
        answer.streams.set(source.streams);
        if (!key) {
          source.hello_ack = bytes_of(answer, nullptr);
          chosen = std::move(source);
          return true;
        }
        Path reply_path = config.path;
        if (learn_peer_mac) reply_path.peer.mac = source.mac;
        auto known = std::find_if(pending.begin(), pending.end(),
                                  [&](const PendingSource& p) { return p.session == frame.session; });
        if (known == pending.end()) {
          answer.security.set(hello.security.get());
          const Nonce nonce = random_nonce();
          const HelloAuth answer_auth = make_destination_auth(*key, frame.session, hello, source_auth, answer, nonce);
          source.hello_ack = bytes_of(answer, &answer_auth);
          source.keys = derive_session_keys(*key, frame.session, nonce_of(source_auth), nonce,
                                            (hello.security.get() & kSecurityEncrypted) != 0);
          auto crypto = FrameCrypto::create(source.keys, FrameCrypto::Side::kDestination);
          if (!crypto) return false;
          source.control_crypto = std::make_unique<FrameCrypto>(std::move(crypto).value());
          if (pending.size() == kMaxPendingSources) pending.erase(pending.begin());
          pending.push_back(std::move(source));
          known = pending.end() - 1;
        }
        // A repeated HELLO (our HELLO_ACK was lost) gets the same answer.
        send_control(control, reply_path, FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = frame.session},
                     known->hello_ack.data(), static_cast<std::uint16_t>(known->hello_ack.size()), nullptr);
        return false;
      });
  if (!chosen) {
    if (refusal) {
      return make_error(ErrorCode::kRefused,
                        "no session within " + std::to_string(config.hello_timeout_ms) + " ms: refused " +
                            std::to_string(control_counters.drops[static_cast<std::size_t>(FrameDrop::kRefusedHello)]) +
                            " HELLO(s), the last because " + refusal->message,
                        static_cast<std::uint32_t>(refusal->reason));
    }
    return make_error(ErrorCode::kPeerGone, "no HELLO to " + endpoint_text(config.path.local) + " within " +
                      std::to_string(config.hello_timeout_ms) + " ms" +
                      (pending.empty() ? "" : " from a source that then proved the pre-shared key") +
                      drops_note(control_counters));
  }
  if (learn_peer_mac) config.path.peer.mac = chosen->mac;
  config.streams = chosen->streams;

  std::unique_ptr<DestinationSession> destination(new DestinationSession());
  destination->config_ = config;
  destination->streams_note_ = fewer_streams_note(requested.streams, config.streams, port);
  destination->port_ = port.id();
  destination->control_counters_ = control_counters;
  destination->generations_.assign(config.region_pages, 0);
  if (key) {
    destination->crypto_.push_back(std::move(chosen->control_crypto));
    for (std::uint16_t s = 1; s < config.streams; ++s) {
      auto crypto = FrameCrypto::create(chosen->keys, FrameCrypto::Side::kDestination);
      if (!crypto) return crypto.error();
      destination->crypto_.push_back(std::make_unique<FrameCrypto>(std::move(crypto).value()));
    }
  }
  const std::uint32_t session = chosen->session;
  destination->responder_ =
      std::make_unique<Responder>(control, config.path, session, std::move(chosen->hello_ack), destination->crypto(0));
  // The source splits its pages between streams by its own region.
  const std::uint64_t source_pages = chosen->region_pages;
  for (std::uint16_t s = 0; s < config.streams; ++s) {
    auto decoder = pagecodec::Decoder::create(config.page_size, config.region_pages);
    if (!decoder) return decoder.error();
    destination->streams_.emplace_back(s, QueueRef{port.id(), s, port.pool(), {}, port.frame_reserve(s)}, config.path, session, config.tuning,
                                       std::move(decoder).value(), region, destination->generations_.data(),
                                       max_record_bytes(config), s == 0 ? destination->responder_.get() : nullptr,
                                       first_page_of_stream(s, source_pages, config.streams),
                                       first_page_of_stream(static_cast<std::uint16_t>(s + 1), source_pages,
                                                            config.streams),
                                       destination->crypto(s), config.applied_pages);
  }
  destination->windows_ = std::make_unique<WindowGrowth>(port, config.streams, config.tuning.window_memory_bytes);
  auto runner = launch_runner(config);
  if (!runner) return runner.error();
  destination->runner_ = std::move(runner).value();
  destination->telemetry_ = std::make_unique<TelemetryRegistration>(TelemetryEntry{
      .session = session, .role = "destination", .path_mtu = 0, .streams = published_of(destination->streams_)});
  if (key) {
    // The frame that proved the key: the source's first PROBE, waiting for its answer.
    if (first_sealed.type == FrameType::kProbe) destination->streams_[0].answer_probe(first_sealed);
  } else {
    destination->responder_->send_hello_ack();
  }
  return destination;
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

Status DestinationSession::run_until_finished() {
  if (runner_ != nullptr) return run_stream_cores_until_finished();
  SilenceWatch peer(ms_to_tsc(config_.peer_timeout_ms));
  for (;;) {
    bool busy = false;
    const std::uint64_t now = rte_rdtsc();
    std::uint64_t frames = 0;
    for (std::uint16_t s = 0; s < streams_.size(); ++s) {
      busy |= streams_[s].poll(now);
      if (streams_[s].failed()) return failed_stream();
      frames += frames_from_source(streams_[s].counters());
    }
    if (peer.expired(frames, now) && busy) return silent_source(config_.peer_timeout_ms, port_);
    if (responder_->was_aborted()) return make_error(ErrorCode::kAborted, responder_->aborted());
    if (!busy) return Ok{};
    windows_->look();
  }
}

Status DestinationSession::run_stream_cores_until_finished() {
  runner_->start([this](std::uint16_t s) { poll_until_done(streams_[s], *runner_); });
  SilenceWatch peer(ms_to_tsc(config_.peer_timeout_ms));
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
    if (peer.expired(frames_from_source(published_totals().streams), rte_rdtsc())) {
      runner_->stop();
      return silent_source(config_.peer_timeout_ms, port_);
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
  while (!runner_->done(0) && rte_rdtsc() <= deadline) wait.pause();
  runner_->stop();
  if (responder_->commit_requested()) return Ok{};
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
const std::string& SourceSession::window_note() const { return windows_->note(); }

SessionTotals DestinationSession::published_totals() const { return published_totals_of(streams_); }

unsigned DestinationSession::stream_lcore(std::uint16_t s) const { return lcore_of(runner_, s); }

}  // namespace pagewire::transport
