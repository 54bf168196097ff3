// Inside a Link: what the CLI tunes and reports beyond the embedding API. Not installed:
// it brings in DPDK's headers.
#pragma once

#include <memory>
#include <optional>

#include "pagewire/migration/link.hpp"
#include "pagewire/pinning/cpu_claims.hpp"
#include "pagewire/pinning/plan.hpp"
#include "pagewire/pinning/topology.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::migration {

struct Link::Parts {
  Parts() = default;
  Parts(const Parts&) = delete;
  Parts& operator=(const Parts&) = delete;
  ~Parts();  // the port, then EAL if the link started it: nothing left under /var/run/dpdk

  bool owns_eal = false;
  std::optional<pinning::Topology> topology;  // none when the embedder runs EAL
  pinning::Plan plan;
  pinning::CpuClaims cpu_claims;  // released when the link goes
  std::unique_ptr<transport::Port> port;
  // Addresses, keys, streams and cores; Source and Destination add the region and the
  // codec's settings to a copy. Tune it between open() and connect()/accept().
  transport::SessionConfig session;
  // Link::cancel's: watched by await_up() and by every session's handshake and run
  // (session.cancel points here).
  transport::StopReason cancel;
};

}  // namespace pagewire::migration
