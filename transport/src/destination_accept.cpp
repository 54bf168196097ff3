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

}  // namespace pagewire::transport
