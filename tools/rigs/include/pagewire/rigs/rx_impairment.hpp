// Loss and an MTU clamp applied as frames arrive (an ethdev RX callback), so any port, a
// real NIC included, can be impaired without a forwarding thread. Dropping at the receiver is
// loss on the wire; dropping in a TX callback is not an option, since rte_eth_tx_burst would
// then report dropped frames as unsent and the sender would release them twice. The
// per-queue state belongs to the queue's receiving core.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "pagewire/result.hpp"

struct rte_eth_rxtx_callback;
struct rte_mbuf;

namespace pagewire::rigs {

struct RxImpairmentConfig {
  double drop = 0;              // probability per frame
  std::uint16_t mtu_clamp = 0;  // IP packets above this are dropped (a router, DF set); 0 = off
  std::uint64_t seed = 1;
};

class RxImpairment {
 public:
  static Result<std::unique_ptr<RxImpairment>> install(std::uint16_t port, std::uint16_t queue,
                                                       const RxImpairmentConfig& config);
  ~RxImpairment();

  // Switches the impairment on or off from another thread (between benchmark rounds).
  void set_enabled(bool enabled) { enabled_.store(enabled, std::memory_order_relaxed); }

  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t clamped() const { return clamped_; }

 private:
  RxImpairment(std::uint16_t port, std::uint16_t queue, const RxImpairmentConfig& config);
  static std::uint16_t on_receive(std::uint16_t port, std::uint16_t queue, rte_mbuf* frames[],
                                  std::uint16_t count, std::uint16_t capacity, void* self);

  std::uint16_t port_, queue_;
  std::uint64_t drop_threshold_;  // drop when the next random u64 is below this
  std::uint16_t mtu_clamp_;
  std::uint64_t state_;
  std::uint64_t dropped_ = 0, clamped_ = 0;
  std::atomic<bool> enabled_{true};
  const rte_eth_rxtx_callback* callback_ = nullptr;
};

}  // namespace pagewire::rigs
