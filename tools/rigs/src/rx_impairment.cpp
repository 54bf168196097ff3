#include "pagewire/rigs/rx_impairment.hpp"

#include "pagewire/transport/frame.hpp"

#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cmath>

namespace pagewire::rigs {

RxImpairment::RxImpairment(std::uint16_t port, std::uint16_t queue, const RxImpairmentConfig& config)
    : port_(port),
      queue_(queue),
      drop_threshold_(config.drop <= 0 ? 0 : static_cast<std::uint64_t>(std::ldexp(config.drop, 64))),
      mtu_clamp_(config.mtu_clamp),
      state_(config.seed | 1) {}

Result<std::unique_ptr<RxImpairment>> RxImpairment::install(std::uint16_t port, std::uint16_t queue,
                                                            const RxImpairmentConfig& config) {
  if (config.drop < 0 || config.drop >= 1) return make_error("drop probability: expected 0 <= p < 1");
  std::unique_ptr<RxImpairment> impairment(new RxImpairment(port, queue, config));
  impairment->callback_ = rte_eth_add_rx_callback(port, queue, &RxImpairment::on_receive, impairment.get());
  if (impairment->callback_ == nullptr) {
    return make_error("port " + std::to_string(port) + " queue " + std::to_string(queue) +
                      ": RX callbacks unavailable (DPDK built without RTE_ETHDEV_RXTX_CALLBACKS?)");
  }
  return impairment;
}

RxImpairment::~RxImpairment() {
  if (callback_ != nullptr) rte_eth_remove_rx_callback(port_, queue_, callback_);
}

// Frames it drops are freed here, as the wire would lose them; the sender still holds its
// own reference and resends.
std::uint16_t RxImpairment::on_receive(std::uint16_t, std::uint16_t, rte_mbuf* frames[], std::uint16_t count,
                                       std::uint16_t, void* self) {
  auto& impairment = *static_cast<RxImpairment*>(self);
  if (!impairment.enabled_.load(std::memory_order_relaxed)) return count;
  std::uint16_t kept = 0;
  for (std::uint16_t i = 0; i < count; ++i) {
    rte_mbuf* frame = frames[i];
    impairment.state_ ^= impairment.state_ << 13;  // xorshift64: cheap and per queue
    impairment.state_ ^= impairment.state_ >> 7;
    impairment.state_ ^= impairment.state_ << 17;
    const transport::LinkHeader link = transport::link_header(frame);
    if (impairment.mtu_clamp_ != 0 && link.ether_type == RTE_ETHER_TYPE_IPV4 &&
        rte_pktmbuf_data_len(frame) >= link.bytes + sizeof(rte_ipv4_hdr)) {
      const auto* ip = rte_pktmbuf_mtod_offset(frame, const rte_ipv4_hdr*, link.bytes);
      if (rte_be_to_cpu_16(ip->total_length) > impairment.mtu_clamp_) {
        ++impairment.clamped_;
        rte_pktmbuf_free(frame);
        continue;
      }
    }
    if (impairment.state_ < impairment.drop_threshold_) {
      ++impairment.dropped_;
      rte_pktmbuf_free(frame);
      continue;
    }
    frames[kept++] = frame;
  }
  return kept;
}

}  // namespace pagewire::rigs
