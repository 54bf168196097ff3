#include "pagewire/transport/outcome_query.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include "control_channel.hpp"
#include "pagewire/transport/arp.hpp"
#include "pagewire/transport/handshake.hpp"

namespace pagewire::transport {

Result<CommitOutcome> query_outcome(const SessionConfig& config, const Port& port, std::uint32_t session,
                                    std::uint32_t timeout_ms, StreamCounters* counters) {
  const QueueRef queue{port.id(), 0, port.pool()};
  Path path = config.path;
  apply_udp_checksum(config, port, &path);
  if (is_zero_mac(path.peer.mac)) {
    auto mac = resolve_mac(queue, path.local, config.next_hop_ip != 0 ? config.next_hop_ip : path.peer.ip,
                           std::max<std::uint32_t>(1, timeout_ms / 200), 200, config.cancel);
    if (!mac) return mac.error();
    path.peer.mac = *mac;
  }
  const PreSharedKey* key = config.security.key ? &*config.security.key : nullptr;
  const OutcomeQueryPayload query = make_outcome_query(key, session, random_nonce());
  StreamCounters own_counters;
  StreamCounters* counted = counters != nullptr ? counters : &own_counters;
  std::optional<CommitOutcome> outcome;
  const std::uint64_t deadline = rte_rdtsc() + ms_to_tsc(timeout_ms);
  while (!outcome && rte_rdtsc() < deadline) {
    if (config.cancel != nullptr && config.cancel->is_set()) {
      return make_error(ErrorCode::kCancelled, "cancelled: " + config.cancel->reason());
    }
    send_control(queue, path, FrameFields{.type = FrameType::kOutcomeQuery, .stream = 0, .session = session}, &query,
                 sizeof query, nullptr);
    receive_control(queue, path, config.streams, session, std::min(deadline, rte_rdtsc() + ms_to_tsc(200)), counted,
                    [&](const ReceivedFrame& frame, rte_mbuf**) {
                      if (frame.type != FrameType::kOutcome || frame.sealed) {
                        ++counted->drops[static_cast<std::size_t>(FrameDrop::kWrongSession)];
                        return false;
                      }
                      if (frame.payload_bytes < sizeof(OutcomePayload)) {
                        ++counted->drops[static_cast<std::size_t>(FrameDrop::kTruncated)];
                        return false;
                      }
                      OutcomePayload answer;
                      std::memcpy(&answer, frame.payload, sizeof answer);
                      outcome = outcome_of(key, session, query, answer);
                      if (!outcome) ++counted->drops[static_cast<std::size_t>(FrameDrop::kBadTag)];
                      return outcome.has_value();
                    });
  }
  return outcome.value_or(CommitOutcome::kUnknown);
}

}  // namespace pagewire::transport
