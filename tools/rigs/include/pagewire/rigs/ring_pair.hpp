// Two DPDK ports joined back to back by rte_rings (net_ring): what port A sends on queue q,
// port B receives on queue q and vice versa. No NIC, no kernel, no extra thread: the fastest
// link a single machine has, for benchmarks and for embedding tests.
#pragma once

#include <rte_ring.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/rigs/middlebox.hpp"
#include "pagewire/transport/port.hpp"

namespace pagewire::rigs {

class RingPair {
 public:
  static Result<RingPair> create(const std::string& name, std::uint16_t queues, unsigned ring_size = 4096);

  RingPair(RingPair&& other) noexcept;
  RingPair& operator=(RingPair&&) = delete;
  ~RingPair();

  std::uint16_t a_port() const { return a_port_; }
  std::uint16_t b_port() const { return b_port_; }

  // Frees the frames still in flight. They come from the ports' mempools, so this must run
  // before the ports close; RingLink below keeps that order.
  void drain();
  // The same for one queue's two rings only: safe on the core that owns that queue while
  // other cores drain theirs.
  void drain(std::uint16_t queue);

 private:
  RingPair() = default;
  std::vector<rte_ring*> rings_;
  std::uint16_t a_port_ = 0, b_port_ = 0;
};

// A ring pair with a pagewire Port on each end, torn down in the only safe order: frames in
// the rings back to their pools, then the ports (and pools), then the rings. With an
// impairment, a Middlebox forwarder stands between the two ends (an extra hop and thread).
class RingLink {
 public:
  static Result<std::unique_ptr<RingLink>> create(const std::string& name, std::uint16_t queues, std::uint16_t mtu,
                                                  std::uint32_t held_frames_per_queue,
                                                  const LinkImpairment* impairment = nullptr);
  ~RingLink();

  const transport::Port& a() const { return *a_; }
  const transport::Port& b() const { return *b_; }
  const Middlebox* middlebox() const { return middlebox_.get(); }
  Middlebox* middlebox() { return middlebox_.get(); }  // to inject frames; null without impairment

 private:
  RingLink() = default;
  std::optional<RingPair> pair_;
  std::unique_ptr<Middlebox> middlebox_;
  std::unique_ptr<transport::Port> a_, b_;
};

}  // namespace pagewire::rigs
