#include "control_channel.hpp"

#include <cstring>

namespace pagewire::transport {

bool send_control(const QueueRef& queue, const Path& path, const FrameFields& fields, const void* payload,
                  std::uint16_t payload_bytes, FrameCrypto* crypto, std::uint16_t pad_to_ip_bytes) {
  const auto copy_payload = [&](std::byte* room) {
    if (payload_bytes > 0) std::memcpy(room, payload, payload_bytes);
    return payload_bytes;
  };
  return send_frame(rte_pktmbuf_alloc(queue.pool), queue.port, queue.queue, path, fields, crypto, copy_payload,
                    pad_to_ip_bytes) == SendResult::kSent;
}

std::string link_note(std::uint16_t port) {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_DOWN) {
    return " (this port's link is down)";
  }
  return "";
}

std::string drops_note(const StreamCounters& counters) {
  std::string note;
  for (std::size_t d = 0; d < counters.drops.size(); ++d) {
    if (counters.drops[d] == 0 || d == static_cast<std::size_t>(FrameDrop::kNone)) continue;
    note += (note.empty() ? " (frames dropped: " : ", ") + std::to_string(counters.drops[d]) + " " +
            std::string(to_string(static_cast<FrameDrop>(d)));
  }
  return note.empty() ? note : note + ")";
}

}  // namespace pagewire::transport
