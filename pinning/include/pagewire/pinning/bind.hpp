// Applying a plan to the running process: threads onto PUs, memory onto NUMA nodes. Every
// hwloc call is checked; a refusal is an error whose message says what the kernel refused.
#pragma once

#include <cstddef>

#include "pagewire/pinning/topology.hpp"
#include "pagewire/result.hpp"

namespace pagewire::pinning {

// Pins the calling thread to the PU with OS index `pu` (for non-EAL threads; EAL pins its
// lcores itself from the plan's arguments).
Status pin_current_thread(const Topology& topology, unsigned pu);

// Binds [address, address + bytes) to NUMA node `node` (os index) and migrates pages already
// touched. On machines or kernels that refuse (no NUMA support, a container's policy), the
// error says so; callers treat it as a note, not a failure.
Status bind_memory(const Topology& topology, void* address, std::size_t bytes, int node);

}  // namespace pagewire::pinning
