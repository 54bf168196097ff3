// DestinationSession::accept: the destination's side of the handshake. Without a key the
// first HELLO that fits decides; with one, the source that then proves the key.
#include <rte_cycles.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "control_channel.hpp"
#include "destination_responder.hpp"
#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/session.hpp"
#include "session_shared.hpp"
#include "window_growth.hpp"

namespace pagewire::transport {

namespace {

// A source whose HELLO was answered, while the destination waits for its first frame after
// it: sealed with the session's keys (with a key), or echoing our nonce (without). A
// replayed or forged HELLO gets this far, and no further.
struct PendingSource {
  std::uint32_t session = 0;
  rte_ether_addr mac{};
  std::uint64_t region_pages = 0;
  std::uint16_t streams = 0;  // the smaller of its offer and ours: what the session runs
  std::vector<std::byte> hello_ack;
  Nonce nonce{};  // ours, in its HELLO_ACK
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

// Listens on queue 0 for the source that will be this session's: HELLOs are checked and
// answered (or refused, and counted), and the session is the one whose source then sends
// its first PROBE sealed with the session's keys (with a key) or echoing the nonce of our
// HELLO_ACK (without), so a stranger's, a forged or a replayed HELLO neither takes the
// destination nor ends the wait.
class HelloListener {
 public:
  HelloListener(const SessionConfig& config, const Port& port)
      : config_(config),
        control_{port.id(), 0, port.pool()},
        learn_peer_mac_(is_zero_mac(config.path.peer.mac)),
        own_hello_(make_hello(config, port.mtu())) {}

  // Until a source is chosen, one aborts, we are cancelled or the HELLO timeout passes.
  Result<PendingSource> listen() {
    const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(config_.hello_timeout_ms);
    // In slices of 100 ms, so that a cancel is seen within one.
    while (!chosen_ && source_abort_.empty() && !cancelled() && rte_rdtsc() < deadline) {
      receive_control(
          control_, config_.path, config_.streams, 0, std::min(deadline, rte_rdtsc() + ms_to_tsc(100)), &counters_,
          [this](ReceivedFrame& frame, rte_mbuf** mbuf) {
            return frame.sealed ? on_sealed(frame, mbuf) : on_clear(frame, *mbuf);
          },
          [this](const ReceivedFrame& frame, const rte_mbuf* mbuf) { return on_other_version(frame, mbuf); });
    }
    if (chosen_) return std::move(*chosen_);
    if (!source_abort_.empty()) {
      return make_error(ErrorCode::kAborted, "the source aborted the handshake: " + source_abort_);
    }
    if (cancelled()) return abort_pending();
    return nobody_chosen();
  }

  const StreamCounters& counters() const { return counters_; }
  const QueueRef& control() const { return control_; }
  // The frame that completed the handshake (no payload: its mbuf is gone).
  const ReceivedFrame& first_frame() const { return first_frame_; }

 private:
  const std::optional<PreSharedKey>& key() const { return config_.security.key; }
  bool cancelled() const { return config_.cancel != nullptr && config_.cancel->is_set(); }
  void count(FrameDrop drop) { ++counters_.drops[static_cast<std::size_t>(drop)]; }
  PendingSource* pending(std::uint32_t session) {
    auto source = std::find_if(pending_.begin(), pending_.end(), [&](const PendingSource& p) { return p.session == session; });
    return source == pending_.end() ? nullptr : &*source;
  }
  bool on_abort(const PendingSource& source, const ReceivedFrame& frame);
  Error abort_pending();
  bool on_sealed(ReceivedFrame& frame, rte_mbuf** mbuf);
  bool on_clear(const ReceivedFrame& frame, const rte_mbuf* mbuf);
  bool on_other_version(const ReceivedFrame& frame, const rte_mbuf* mbuf);
  // The MAC a frame came from, if it may speak to us (a destination bound to --peer-mac
  // hears only that one).
  std::optional<rte_ether_addr> sender_mac(const rte_mbuf* mbuf) const {
    const rte_ether_addr mac = rte_pktmbuf_mtod(mbuf, const rte_ether_hdr*)->src_addr;  // the last hop
    if (!learn_peer_mac_ && !rte_is_same_ether_addr(&mac, &config_.path.peer.mac)) return std::nullopt;
    return mac;
  }
  std::optional<Refusal> check(const ReceivedFrame& frame, const HelloPayload& hello, HelloAuth* auth);
  void answer(const ReceivedFrame& frame, const HelloPayload& hello, const HelloAuth& auth, PendingSource source);
  bool on_echo(const ReceivedFrame& frame);
  void choose(PendingSource& source, const ReceivedFrame& frame);
  Path reply_path(const rte_ether_addr& mac) const {
    Path path = config_.path;
    if (learn_peer_mac_) path.peer.mac = mac;
    return path;
  }
  Error nobody_chosen() const;

  const SessionConfig& config_;
  QueueRef control_;
  bool learn_peer_mac_;
  HelloPayload own_hello_;
  StreamCounters counters_;
  std::vector<PendingSource> pending_;
  std::optional<PendingSource> chosen_;
  std::optional<Refusal> refusal_;  // the last HELLO refused
  std::string source_abort_;        // a pending source's ABORT: it gave up
  ReceivedFrame first_frame_{};
};

// A sealed frame: the first of a source whose HELLO we answered, if its keys open it.
bool HelloListener::on_sealed(ReceivedFrame& frame, rte_mbuf** mbuf) {
  PendingSource* source = pending(frame.session);
  if (source == nullptr) {
    count(key() ? FrameDrop::kWrongSession : FrameDrop::kSealMismatch);
    return false;
  }
  const FrameDrop drop = open_frame(mbuf, &frame, source->control_crypto.get(), control_.pool);
  if (drop != FrameDrop::kNone) {
    count(drop);
    return false;
  }
  if (frame.type == FrameType::kAbort) return on_abort(*source, frame);
  choose(*source, frame);
  return true;
}

// A pending source gave up (cancelled) and proved it heard our answer: sealed with the
// session's keys, or echoing our nonce. The wait ends with its reason, as a session would.
bool HelloListener::on_abort(const PendingSource& source, const ReceivedFrame& frame) {
  source_abort_ = abort_reason(frame.payload, frame.payload_bytes, key() ? nullptr : &source.nonce);
  return true;
}

// Cancelled while sources wait for their handshake to complete: each is told (ABORT, as
// sealed or clear as the rest of its session would be), so none waits out its probes.
Error HelloListener::abort_pending() {
  const std::string reason = "the destination was cancelled: " + config_.cancel->reason();
  const std::string text = reason.substr(0, kMaxAbortReason);
  for (const PendingSource& source : pending_) {
    for (int i = 0; i < 3; ++i) {  // unacknowledged: said a few times
      send_control(control_, reply_path(source.mac), FrameFields{.type = FrameType::kAbort, .stream = 0, .session = source.session},
                   text.data(), static_cast<std::uint16_t>(text.size()), source.control_crypto.get());
    }
  }
  return make_error(ErrorCode::kCancelled, "cancelled: " + config_.cancel->reason());
}

void HelloListener::choose(PendingSource& source, const ReceivedFrame& frame) {
  first_frame_ = frame;
  first_frame_.payload = nullptr;  // the mbuf goes when the listener's handler returns
  first_frame_.payload_bytes = 0;
  chosen_ = std::move(source);
}

// Without a key: a PROBE that echoes the nonce of the HELLO_ACK its session was answered with.
// Or an ABORT that echoes it: that source gave up.
bool HelloListener::on_echo(const ReceivedFrame& frame) {
  PendingSource* source = pending(frame.session);
  if (source == nullptr || !echoes(frame.payload, frame.payload_bytes, source->nonce)) {
    count(FrameDrop::kWrongSession);
    return false;
  }
  if (frame.type == FrameType::kAbort) return on_abort(*source, frame);
  choose(*source, frame);
  return true;
}

// Before a session, only HELLO (and, without a key, the PROBE that completes a handshake)
// is for us; anything else is counted, as every frame is.
bool HelloListener::on_clear(const ReceivedFrame& frame, const rte_mbuf* mbuf) {
  if ((frame.type == FrameType::kProbe || frame.type == FrameType::kAbort) && !key()) return on_echo(frame);
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
  // Bound to a peer MAC (the source's, or the last router's): HELLOs from elsewhere are
  // not for us.
  const std::optional<rte_ether_addr> mac = sender_mac(mbuf);
  if (!mac) {
    count(FrameDrop::kNotForUs);
    return false;
  }
  source.mac = *mac;
  source.region_pages = hello.region_pages.get();
  HelloAuth auth{};
  refusal_ = check(frame, hello, &auth);
  if (refusal_) {
    send_refusal(control_, reply_path(source.mac), frame.session, *refusal_);
    // Answered and counted, and the wait goes on: one HELLO that does not fit, a stranger's
    // or a misconfigured source's, must not end a destination that the real source has
    // yet to reach.
    count(FrameDrop::kRefusedHello);
    return false;
  }
  // The session runs the smaller offer; the HELLO_ACK says which.
  source.streams = std::min(hello.streams.get(), config_.streams);
  answer(frame, hello, auth, std::move(source));
  return false;  // chosen once its first PROBE proves it heard us
}

// A HELLO of another protocol version (counted as such) is refused in ours, saying both
// versions: a source that reads the prefix every version keeps learns why at once. The wait
// goes on, as after any refused HELLO.
bool HelloListener::on_other_version(const ReceivedFrame& frame, const rte_mbuf* mbuf) {
  if (frame.type != FrameType::kHello) return false;
  if (const std::optional<rte_ether_addr> mac = sender_mac(mbuf)) {
    send_refusal(control_, reply_path(*mac), frame.session, version_refusal(frame.version));
  }
  return false;
}

// What the HELLO asks for that we cannot give, or a key it does not prove; `auth` gets its
// proof.
std::optional<Refusal> HelloListener::check(const ReceivedFrame& frame, const HelloPayload& hello, HelloAuth* auth) {
  if (auto refusal = check_hello(hello, config_)) return refusal;
  if (!key()) return std::nullopt;
  if (frame.payload_bytes < sizeof hello + sizeof *auth) {
    return Refusal{RefuseReason::kAuthentication, "HELLO too short for its authentication"};
  }
  std::memcpy(auth, frame.payload + sizeof hello, sizeof *auth);
  if (!source_auth_valid(*key(), frame.session, hello, *auth)) {
    count(FrameDrop::kBadTag);
    return Refusal{RefuseReason::kAuthentication,
                   "authentication failed: the source's pre-shared key differs from the destination's"};
  }
  return std::nullopt;
}

// A HELLO that fits (and proved the key, with one): answered with our nonce (and our proof
// over both nonces, with a key), and remembered until its source's first PROBE. A repeated
// HELLO (our HELLO_ACK was lost) gets the same answer.
void HelloListener::answer(const ReceivedFrame& frame, const HelloPayload& hello, const HelloAuth& auth,
                           PendingSource source) {
  PendingSource* known = pending(frame.session);
  if (known == nullptr) {
    HelloPayload answer = own_hello_;
    answer.streams.set(source.streams);
    source.nonce = random_nonce();
    if (key()) {
      answer.security.set(hello.security.get());
      const HelloAuth answer_auth = make_destination_auth(*key(), frame.session, hello, auth, answer, source.nonce);
      source.hello_ack = bytes_of(answer, &answer_auth);
      source.keys = derive_session_keys(*key(), frame.session, nonce_of(auth), source.nonce,
                                        (hello.security.get() & kSecurityEncrypted) != 0);
      auto crypto = FrameCrypto::create(source.keys, FrameCrypto::Side::kDestination);
      if (!crypto) return;
      source.control_crypto = std::make_unique<FrameCrypto>(std::move(crypto).value());
    } else {
      source.hello_ack = bytes_of(answer, nullptr);
      source.hello_ack.insert(source.hello_ack.end(), reinterpret_cast<const std::byte*>(source.nonce.data()),
                              reinterpret_cast<const std::byte*>(source.nonce.data()) + source.nonce.size());
    }
    // A flood of HELLOs pushes out the oldest: it can delay a real source, never take its place.
    if (pending_.size() == kMaxPendingSources) pending_.erase(pending_.begin());
    pending_.push_back(std::move(source));
    known = &pending_.back();
  }
  send_control(control_, reply_path(known->mac), FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = frame.session},
               known->hello_ack.data(), static_cast<std::uint16_t>(known->hello_ack.size()), nullptr);
}

Error HelloListener::nobody_chosen() const {
  if (refusal_) {
    return make_error(ErrorCode::kRefused,
                      "no session within " + std::to_string(config_.hello_timeout_ms) + " ms: refused " +
                          std::to_string(counters_.drops[static_cast<std::size_t>(FrameDrop::kRefusedHello)]) +
                          " HELLO(s), the last because " + refusal_->message,
                      static_cast<std::uint32_t>(refusal_->reason));
  }
  if (!pending_.empty()) {
    return make_error(ErrorCode::kPeerGone,
                      "no session within " + std::to_string(config_.hello_timeout_ms) + " ms: " +
                          std::to_string(pending_.size()) + " source(s) sent HELLO and never completed the handshake (" +
                          (key() ? "no frame sealed with the pre-shared key" : "no PROBE echoing our nonce") + ")" +
                          drops_note(counters_));
  }
  return make_error(ErrorCode::kPeerGone, "no HELLO to " + endpoint_text(config_.path.local) + " within " +
                    std::to_string(config_.hello_timeout_ms) + " ms" + drops_note(counters_));
}

}  // namespace

Result<std::unique_ptr<DestinationSession>> DestinationSession::accept(const SessionConfig& requested, const Port& port,
                                                                       const pagecodec::PageMap& memory) {
  if (Status fits = check_memory(memory, requested); !fits) return fits.error();
  SessionConfig config = requested;
  auto offered = prepare_port(config, port);
  if (!offered) return offered.error();
  config.streams = *offered;
  if (config.security.encrypt && !config.security.key) {
    return make_error(ErrorCode::kConfiguration, "encryption needs a pre-shared key (--psk-file)");
  }
  apply_udp_checksum(config, port, &config.path);
  HelloListener listener(config, port);
  auto chosen = listener.listen();
  if (!chosen) return chosen.error();
  if (is_zero_mac(config.path.peer.mac)) config.path.peer.mac = chosen->mac;
  config.streams = chosen->streams;

  std::unique_ptr<DestinationSession> destination(new DestinationSession());
  destination->config_ = config;
  if (config.cancel != nullptr) destination->cancelled_ = config.cancel;
  destination->streams_note_ = fewer_streams_note(requested.streams, config.streams, port);
  destination->port_ = port.id();
  destination->control_counters_ = listener.counters();
  destination->memory_ = memory;
  destination->generations_.assign(config.region_pages, 0);
  if (config.security.key) {
    destination->crypto_.push_back(std::move(chosen->control_crypto));
    for (std::uint16_t s = 1; s < config.streams; ++s) {
      auto crypto = FrameCrypto::create(chosen->keys, FrameCrypto::Side::kDestination);
      if (!crypto) return crypto.error();
      destination->crypto_.push_back(std::make_unique<FrameCrypto>(std::move(crypto).value()));
    }
  }
  destination->session_ = chosen->session;
  destination->responder_ = std::make_unique<Responder>(listener.control(), config.path, chosen->session,
                                                        std::move(chosen->hello_ack), destination->crypto(0),
                                                        destination->config_.security.key ? &*destination->config_.security.key : nullptr);
  // Keyless, a source cancelled before it saw our PROBE_ACK echoes our nonce in its ABORT.
  if (!config.security.key) destination->responder_->strip_from_abort(chosen->nonce);
  if (Status started = destination->start_streams(port, chosen->region_pages); !started) return started.error();
  // The frame that completed the handshake: the source's first PROBE, waiting for its answer.
  if (listener.first_frame().type == FrameType::kProbe) destination->streams_[0].answer_probe(listener.first_frame());
  return destination;
}

// A stream per agreed queue, with its decoder and its share of the source's pages; the
// stream cores; telemetry.
Status DestinationSession::start_streams(const Port& port, std::uint64_t source_pages) {
  const SessionConfig& c = config_;
  source_pages_ = source_pages;
  for (std::uint16_t s = 0; s < c.streams; ++s) {
    auto decoder = pagecodec::Decoder::create(c.page_size, c.region_pages);
    if (!decoder) return decoder.error();
    // The source splits its pages between streams by its own region.
    const std::uint64_t first = first_page_of_stream(s, source_pages, c.streams);
    const std::uint64_t end = first_page_of_stream(static_cast<std::uint16_t>(s + 1), source_pages, c.streams);
    streams_.emplace_back(s, QueueRef{port.id(), s, port.pool(), {}, port.frame_reserve(s)}, c.path, session_, c.tuning,
                          std::move(decoder).value(), &memory_, generations_.data(), max_record_bytes(c),
                          s == 0 ? responder_.get() : nullptr, first, end, crypto(s), c.applied_pages);
  }
  windows_ = std::make_unique<WindowGrowth>(port, c.streams, c.tuning.window_memory_bytes);
  auto runner = launch_runner(c);
  if (!runner) return runner.error();
  runner_ = std::move(runner).value();
  telemetry_ = std::make_unique<TelemetryRegistration>(
      TelemetryEntry{.session = session_, .role = "destination", .path_mtu = 0, .streams = published_of(streams_)});
  return Ok{};
}

}  // namespace pagewire::transport
