// A placement plan: which core runs the control thread, which core each stream runs on,
// where helper threads go, and the EAL arguments that realise it. Built once at start-up
// and logged, so a user never hand-writes a core list and can see why each core was chosen.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagewire/pinning/topology.hpp"
#include "pagewire/result.hpp"

namespace pagewire::pinning {

struct PortLocation {
  std::string port;     // as given: a PCI address or a vdev name
  bool pci = false;
  int numa_node = 0;    // NUMA node os index the port's traffic and memory should stay on
  std::string how;      // how the node was found, in words
};

// A PCI address ("0000:81:00.0" or "81:00.0") is looked up in the topology; anything else
// is a virtual device, whose "location" is the node of its memory: `vdev_node`.
Result<PortLocation> locate_port(const Topology& topology, const std::string& port, int vdev_node = 0);

struct PlacedCpu {
  unsigned pu = 0;       // OS index of the processing unit (Linux CPU number, EAL lcore id)
  unsigned core = 0;     // OS index of its physical core
  int numa_node = 0;
  std::string why;
};

struct PlanRequest {
  std::uint16_t streams = 1;
  std::string port;                 // PCI address or vdev name
  unsigned helper_threads = 1;      // guest model, I/O, reporting: kept off the stream cores
  std::uint64_t memory_megabytes = 1024;  // hugepage memory for the NIC's node
};

struct Plan {
  PortLocation port;
  PlacedCpu control;
  std::vector<PlacedCpu> streams;
  std::vector<PlacedCpu> helpers;
  std::vector<std::string> warnings;  // each names the cost of a fallback
  int numa_nodes = 1;
  std::uint64_t memory_megabytes = 0;

  // -l <control,streams...> --main-lcore <control> and, on several nodes, --socket-mem.
  std::vector<std::string> eal_arguments() const;
  std::string to_text() const;
  std::string to_json() const;
};

Result<Plan> plan(const Topology& topology, const PlanRequest& request);

}  // namespace pagewire::pinning
