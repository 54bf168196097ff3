// The source's side of the handshake as named steps (resolve the peer, HELLO, keys, path
// MTU, congestion control), each reading what the earlier ones settled. SourceSession::connect
// (source_connect.cpp) runs them and then starts the streams.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/session.hpp"
#include "session_shared.hpp"

namespace pagewire::transport {

// The handshake's state as it goes: each step reads what the earlier ones settled.
class SourceHandshake {
 public:
  SourceHandshake(const SessionConfig& config, const Port& port)
      : config_(config), port_(port), control_{port.id(), 0, port.pool()}, session_(new_session_id()) {}

  // ARP for the peer (or the router towards it) unless its MAC was given.
  Status resolve_peer();
  // HELLO until a HELLO_ACK (proving the key, with one) or a REFUSE.
  Status exchange_hello();
  // The streams the destination agreed to, and the rates scaled to them.
  Status settle_streams(std::uint16_t asked);
  // One FrameCrypto per stream from the keys both ends now derive.
  Status derive_keys();
  // The largest IP packet both ports accept and the path carries, and the path's RTT.
  Status probe_path();
  // Congestion control, and adaptive's view of a memory link, from what the path is.
  void choose_congestion_control();
  // The steps in order, until one fails, the destination aborts or we are cancelled.
  Status run(std::uint16_t asked);

  SessionConfig& config() { return config_; }
  const QueueRef& control() const { return control_; }
  std::uint32_t session() const { return session_; }
  const StreamCounters& control_counters() const { return control_counters_; }
  std::uint16_t path_mtu() const { return path_mtu_; }
  std::vector<std::unique_ptr<FrameCrypto>> take_crypto() { return std::move(crypto_); }

 private:
  const std::optional<PreSharedKey>& key() const { return config_.security.key; }
  FrameCrypto* control_crypto() const { return key() ? crypto_[0].get() : nullptr; }
  std::vector<std::byte> hello_bytes();
  bool take_hello_answer(const ReceivedFrame& frame);
  bool take_other_version(const ReceivedFrame& frame);
  Status hello_unanswered() const;
  bool probe(std::uint16_t ip_bytes);
  bool cancelled() const { return config_.cancel != nullptr && config_.cancel->is_set(); }
  // Why a step must end early: the destination aborted, or we are cancelled. Ok: neither.
  Status stopped() const;
  // Cancelled: a destination that answered our HELLO is told (ABORT), so that it need not
  // wait out its HELLO timeout.
  Error give_up();

  SessionConfig config_;
  const Port& port_;
  QueueRef control_;
  std::uint32_t session_;
  StreamCounters control_counters_;
  HelloPayload hello_{};
  Nonce source_nonce_{};
  HelloAuth source_auth_{};
  HelloPayload answer_{};
  HelloAuth answer_auth_{};
  Nonce destination_nonce_{};  // keyless: what the HELLO_ACK carried, echoed in every PROBE
  bool answered_ = false;      // a HELLO_ACK came: the destination knows this session
  std::optional<RefusePayload> refusal_;  // or a REFUSE
  std::uint8_t destination_version_ = 0;  // or an answer in another protocol version
  std::uint64_t unproven_answers_ = 0;    // HELLO_ACKs that did not prove our key
  std::string destination_abort_;  // the destination's ABORT during the handshake
  std::uint64_t hello_rtt_us_ = 0;
  std::uint64_t probe_wait_tsc_ = 0;
  std::uint32_t probe_id_ = 0;
  // The shortest probe round trip: unlike the HELLO's, not stretched by a destination that
  // was not listening yet.
  std::uint64_t probe_rtt_tsc_ = UINT64_MAX;
  std::uint16_t path_mtu_ = 0;
  std::vector<std::unique_ptr<FrameCrypto>> crypto_;
};

}  // namespace pagewire::transport
