// SourceHandshake's steps (source_handshake.hpp).
#include <rte_cycles.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include "control_channel.hpp"
#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/path_mtu_search.hpp"
#include "pagewire/transport/session.hpp"
#include "session_shared.hpp"
#include "source_handshake.hpp"
#include "window_growth.hpp"


namespace pagewire::transport {
namespace {

std::uint64_t tsc_to_us(std::uint64_t tsc) { return tsc * 1000000 / rte_get_tsc_hz(); }

}  // namespace

Status SourceHandshake::resolve_peer() {
  if (!is_zero_mac(config_.path.peer.mac)) return Ok{};
  // As long as a HELLO would wait: the peer may not be listening yet, or the path be dark.
  constexpr std::uint32_t kArpIntervalMs = 200;
  const std::uint32_t tries = std::max<std::uint32_t>(10, config_.hello_timeout_ms / kArpIntervalMs);
  auto mac = resolve_mac(control_, config_.path.local, config_.next_hop_ip != 0 ? config_.next_hop_ip : config_.path.peer.ip,
                         tries, kArpIntervalMs, config_.cancel);
  if (!mac) return mac.error();
  config_.path.peer.mac = *mac;
  return Ok{};
}

// HELLO, with our proof of the key (with one), the bytes sent until an answer comes.
std::vector<std::byte> SourceHandshake::hello_bytes() {
  hello_ = make_hello(config_, port_.mtu());
  if (key()) {
    source_nonce_ = random_nonce();
    source_auth_ = make_source_auth(*key(), session_, hello_, source_nonce_);
  }
  std::vector<std::byte> bytes(sizeof hello_ + (key() ? sizeof source_auth_ : 0));
  std::memcpy(bytes.data(), &hello_, sizeof hello_);
  if (key()) std::memcpy(bytes.data() + sizeof hello_, &source_auth_, sizeof source_auth_);
  return bytes;
}

// A HELLO_ACK (proved with our key, with one) or a REFUSE ends the wait. A HELLO_ACK carries
// the destination's proof (with a key) or its nonce (without).
bool SourceHandshake::take_hello_answer(const ReceivedFrame& frame) {
  const std::size_t answer_size = sizeof answer_ + (key() ? sizeof answer_auth_ : sizeof destination_nonce_);
  if (frame.type == FrameType::kRefuse && frame.payload_bytes >= sizeof(RefusePayload)) {
    refusal_.emplace();
    std::memcpy(&*refusal_, frame.payload, sizeof *refusal_);
    return true;
  }
  if (frame.type != FrameType::kHelloAck || frame.payload_bytes < answer_size) return false;
  HelloPayload reply;
  std::memcpy(&reply, frame.payload, sizeof reply);
  HelloAuth auth{};
  if (key()) {
    std::memcpy(&auth, frame.payload + sizeof reply, sizeof auth);
    if (!destination_auth_valid(*key(), session_, hello_, source_auth_, reply, auth)) {
      ++unproven_answers_;  // another key, or a forgery: keep listening
      ++control_counters_.drops[static_cast<std::size_t>(FrameDrop::kBadTag)];
      return false;
    }
  } else {
    std::memcpy(destination_nonce_.data(), frame.payload + sizeof reply, destination_nonce_.size());
  }
  answer_ = reply;
  answer_auth_ = auth;
  return answered_ = true;
}

// The answer of a destination of another protocol version (its REFUSE or HELLO_ACK for our
// session, read from the prefix every version keeps): nothing more can be said in common.
bool SourceHandshake::take_other_version(const ReceivedFrame& frame) {
  if (frame.session != session_ || (frame.type != FrameType::kRefuse && frame.type != FrameType::kHelloAck)) return false;
  destination_version_ = frame.version;
  return true;
}

Status SourceHandshake::exchange_hello() {
  if (config_.security.encrypt && !key()) {
    return make_error(ErrorCode::kConfiguration, "encryption needs a pre-shared key (--psk-file)");
  }
  const std::vector<std::byte> hello = hello_bytes();
  const std::uint64_t first_hello = rte_rdtsc();
  const std::uint64_t deadline = first_hello + ms_to_tsc(config_.hello_timeout_ms);
  while (!answered_ && !refusal_ && destination_version_ == 0 && rte_rdtsc() < deadline && !cancelled()) {
    send_control(control_, config_.path, FrameFields{.type = FrameType::kHello, .stream = 0, .session = session_},
                 hello.data(), static_cast<std::uint16_t>(hello.size()), nullptr);
    await_control(
        control_, config_.path, config_.streams, session_, std::min(deadline, rte_rdtsc() + ms_to_tsc(100)),
        &control_counters_, nullptr, [this](const ReceivedFrame& frame, const rte_mbuf*) { return take_hello_answer(frame); },
        [this](const ReceivedFrame& frame, const rte_mbuf*) { return take_other_version(frame); });
  }
  if (!answered_ && cancelled()) return stopped();
  if (Status unanswered = hello_unanswered(); !unanswered) return unanswered;
  if (answer_.security.get() != hello_.security.get()) {
    return make_error("the destination answered with security options " + std::to_string(answer_.security.get()) +
                      ", asked for " + std::to_string(hello_.security.get()));
  }
  // At least the path's RTT (more if the first HELLO was lost).
  hello_rtt_us_ = tsc_to_us(rte_rdtsc() - first_hello);
  return Ok{};
}

// Why HELLO got no HELLO_ACK: refused, another version, another key, or no answer at all.
Status SourceHandshake::hello_unanswered() const {
  if (refusal_) {
    std::string why = refusal_message(*refusal_);
    if (why.empty()) why = "(no reason given)";
    return make_error(ErrorCode::kRefused, "destination refused the session: " + why, refusal_->reason.get());
  }
  if (destination_version_ != 0) {
    return make_error(ErrorCode::kRefused,
                      "the destination speaks protocol version " + std::to_string(destination_version_) +
                          ", this source " + std::to_string(kProtocolVersion) + ": run the same pagewire release at both ends",
                      static_cast<std::uint16_t>(RefuseReason::kVersion));
  }
  if (!answered_ && unproven_answers_ > 0) {
    return make_error(ErrorCode::kAuthentication, std::to_string(unproven_answers_) +
                      " answers to HELLO failed authentication: the destination's pre-shared key differs from ours");
  }
  if (!answered_) {
    Endpoint peer = config_.path.peer;
    peer.vlan = config_.path.local.vlan;  // one link, one VLAN
    return make_error(ErrorCode::kPeerGone, "no answer to HELLO within " + std::to_string(config_.hello_timeout_ms) +
                      " ms from " + endpoint_text(peer) + ": is the destination listening, and are the addresses right?" +
                      drops_note(control_counters_));
  }
  return Ok{};
}

Status SourceHandshake::settle_streams(std::uint16_t asked) {
  const std::uint16_t agreed = answer_.streams.get();
  if (agreed == 0 || agreed > config_.streams) {
    return make_error("the destination answered with " + std::to_string(agreed) + " streams; this source offered " +
                      std::to_string(config_.streams));
  }
  config_.streams = agreed;
  if (agreed < asked) {
    // Rates are per stream, shares of totals split over the streams asked for: the same
    // totals over fewer streams.
    const double share = static_cast<double>(asked) / agreed;
    config_.tuning.rate_bytes_per_second *= share;
    config_.policy.adaptive.link_bytes_per_second *= share;
  }
  return Ok{};
}

Status SourceHandshake::derive_keys() {
  if (!key()) return Ok{};
  // Every frame from here on is sealed with keys only the two of us can derive.
  const SessionKeys keys =
      derive_session_keys(*key(), session_, source_nonce_, nonce_of(answer_auth_), config_.security.encrypt);
  for (std::uint16_t s = 0; s < config_.streams; ++s) {
    auto created = FrameCrypto::create(keys, FrameCrypto::Side::kSource);
    if (!created) return created.error();
    crypto_.push_back(std::make_unique<FrameCrypto>(std::move(created).value()));
  }
  return Ok{};
}

// One probe of `ip_bytes` with DF set: answered within the wait, or not. A late answer to
// an earlier probe of the same size counts too.
bool SourceHandshake::probe(std::uint16_t ip_bytes) {
  const std::uint32_t id = ++probe_id_;
  const std::uint64_t sent = rte_rdtsc();
  // Without a key, each carries the destination's nonce back: a source that never saw the
  // HELLO_ACK cannot take the session (docs/protocol.md, "Without a key").
  const bool echo = !key();
  send_control(control_, config_.path, FrameFields{.type = FrameType::kProbe, .stream = 0, .session = session_, .seq = id},
               echo ? destination_nonce_.data() : nullptr, echo ? std::uint16_t{sizeof destination_nonce_} : std::uint16_t{0},
               control_crypto(), ip_bytes);
  return await_control(control_, config_.path, config_.streams, session_, rte_rdtsc() + probe_wait_tsc_,
                       &control_counters_, control_crypto(), [&](const ReceivedFrame& frame, const rte_mbuf*) {
                         if (frame.type == FrameType::kAbort) {
                           destination_abort_ = abort_reason(frame.payload, frame.payload_bytes);
                           return true;
                         }
                         if (frame.type != FrameType::kProbeAck || frame.payload_bytes < sizeof(ProbeAckPayload)) {
                           return false;
                         }
                         ProbeAckPayload ack;
                         std::memcpy(&ack, frame.payload, sizeof ack);
                         if (frame.seq == id) probe_rtt_tsc_ = std::min(probe_rtt_tsc_, rte_rdtsc() - sent);
                         return frame.seq == id || ack.received_ip_bytes.get() == ip_bytes;
                       });
}

Status SourceHandshake::probe_path() {
  // Probes wait for twice the handshake's round trip, and the streams start their
  // retransmission timer from three times it rather than from a LAN-sized guess, so a
  // 150 ms path sees neither lost probes nor a burst of spurious retransmissions.
  probe_wait_tsc_ = std::max(ms_to_tsc(config_.probe_timeout_ms), 2 * hello_rtt_us_ * rte_get_tsc_hz() / 1000000);
  config_.tuning.initial_rto_us = static_cast<std::uint32_t>(std::min<std::uint64_t>(
      std::max<std::uint64_t>(config_.tuning.initial_rto_us, 3 * hello_rtt_us_), config_.tuning.max_rto_us));
  auto ceiling = path_mtu_ceiling(answer_, port_.mtu());
  if (!ceiling) return ceiling.error();
  // The HELLO_ACK just came through: a search that finds nothing passing met a path gone
  // dark, or a path narrower than the protocol's floor. Searched again for as long as a
  // session rides out silence (the peer timeout), then it is the path.
  const std::uint64_t give_up_at = rte_rdtsc() + ms_to_tsc(config_.peer_timeout_ms);
  for (;;) {
    PathMtuSearch search(kMinPathMtu, *ceiling, 0, PathMtuSearch::Start::kTop, config_.probe_tries);
    PathMtuSearch::Next next = PathMtuSearch::Next::kProbe;
    while (next == PathMtuSearch::Next::kProbe) {
      const bool answered = probe(search.testing());
      if (Status stop = stopped(); !stop) return stop;
      next = answered ? search.on_answered() : search.on_unanswered();
    }
    if (next == PathMtuSearch::Next::kDone) {
      path_mtu_ = search.largest_passing();
      break;
    }
    if (rte_rdtsc() > give_up_at) {
      return make_error(ErrorCode::kPath, "path MTU: not even " + std::to_string(kMinPathMtu) + "-byte packets reached the destination for " +
                        std::to_string(config_.peer_timeout_ms) + " ms (probes with DF set were lost)");
    }
  }
  const std::uint64_t path_rtt_us = probe_rtt_tsc_ == UINT64_MAX ? hello_rtt_us_ : tsc_to_us(probe_rtt_tsc_);
  // The congestion controller's first rate: its initial window per round trip.
  config_.tuning.initial_rtt_us = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(path_rtt_us, 10, 1000000));
  return Ok{};
}

void SourceHandshake::choose_congestion_control() {
  const bool network = crosses_network(config_, port_);
  if (!network && config_.policy.adaptive.link_bytes_per_second == 0) {
    // A memory link has no wire to save bytes on: what holds a sender back there is the
    // receiver's core, which deflate would only give more work. Adaptive sends raw.
    config_.policy.adaptive.link_bytes_per_second = std::numeric_limits<double>::infinity();
  }
  if (config_.tuning.congestion_control != StreamTuning::CongestionControl::kAuto) return;
  constexpr std::uint64_t kLanRttUs = 1000;
  // A memory link is shared with no one, however long a busy machine took to answer.
  const bool shared_path = network && (config_.next_hop_ip != 0 || config_.tuning.initial_rtt_us > kLanRttUs);
  config_.tuning.congestion_control =
      shared_path ? StreamTuning::CongestionControl::kOn : StreamTuning::CongestionControl::kOff;
}

Status SourceHandshake::stopped() const {
  if (!destination_abort_.empty()) return make_error(ErrorCode::kAborted, "the destination aborted: " + destination_abort_);
  if (cancelled()) return make_error(ErrorCode::kCancelled, "cancelled: " + config_.cancel->reason());
  return Ok{};
}

Error SourceHandshake::give_up() {
  const std::string reason = "cancelled: " + config_.cancel->reason();
  if (answered_ && destination_abort_.empty()) {
    if (key() && crypto_.empty()) (void)derive_keys();
    // Keyless, it echoes the HELLO_ACK's nonce first: only the source that heard the answer
    // can end the destination's wait.
    std::vector<std::byte> payload;
    if (!key()) {
      const auto* nonce = reinterpret_cast<const std::byte*>(destination_nonce_.data());
      payload.assign(nonce, nonce + destination_nonce_.size());
    }
    const auto* text = reinterpret_cast<const std::byte*>(reason.data());
    payload.insert(payload.end(), text, text + std::min(reason.size(), kMaxAbortReason));
    for (int i = 0; i < 3; ++i) {  // unacknowledged: said a few times
      send_control(control_, config_.path, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = session_},
                   payload.data(), static_cast<std::uint16_t>(payload.size()), crypto_.empty() ? nullptr : control_crypto());
    }
  }
  return make_error(ErrorCode::kCancelled, reason);
}

Status SourceHandshake::run(std::uint16_t asked) {
  Status done = resolve_peer();
  if (done) done = exchange_hello();
  if (done) done = settle_streams(asked);
  if (done) done = derive_keys();
  if (done) done = probe_path();
  // Cancelled at any point, whatever the step in progress made of it: the peer is told.
  if (cancelled()) return give_up();
  if (done) choose_congestion_control();
  return done;
}

}  // namespace pagewire::transport
