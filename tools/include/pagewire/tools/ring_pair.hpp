// Two DPDK ports joined back to back by rte_rings (net_ring): what port A sends on queue q,
// port B receives on queue q and vice versa. No NIC, no kernel, no extra thread: the fastest
// link a single machine has, for benchmarks and for embedding tests.
#pragma once

#include <rte_ring.h>

#include <cstdint>
#include <string>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::tools {

class RingPair {
 public:
  static Result<RingPair> create(const std::string& name, std::uint16_t queues, unsigned ring_size = 4096);

  RingPair(RingPair&& other) noexcept;
  RingPair& operator=(RingPair&&) = delete;
  ~RingPair();  // close both ports (Port objects must be gone) before this runs

  std::uint16_t a_port() const { return a_port_; }
  std::uint16_t b_port() const { return b_port_; }

 private:
  RingPair() = default;
  std::vector<rte_ring*> rings_;
  std::uint16_t a_port_ = 0, b_port_ = 0;
};

}  // namespace pagewire::tools
