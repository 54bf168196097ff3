// A placement plan: which core runs the control thread, which core each stream runs on,
// where helper threads go, and the EAL arguments that realise it. Built once at start-up
// and logged, so a user never hand-writes a core list and can see why each core was chosen.
#pragma once

#include <cstdint>
#include <set>
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
  unsigned pu = 0;       // OS index of the processing unit (Linux CPU number)
  unsigned core = 0;     // OS index of its physical core
  int numa_node = 0;
  std::string why;
  unsigned lcore = 0;    // EAL lcore id: the PU's number, unless roles share PUs (--lcores)
};

struct PlanRequest {
  std::uint16_t streams = 1;
  std::string port;                 // PCI address or vdev name
  unsigned helper_threads = 1;      // guest model, I/O, reporting: kept off the stream cores
  std::uint64_t memory_megabytes = 1024;  // hugepage memory for the NIC's node
  // Chosen by hand (--cpu, --cores): the control CPU, and one CPU per stream. Unset/empty:
  // planned. CPUs given twice are shared, as with share_cpus.
  int control_cpu = -1;
  std::vector<unsigned> stream_cpus = {};
  // When the machine has fewer CPUs than the streams need, let them share: each stream keeps
  // an EAL lcore of its own, several lcores mapped to one CPU (EAL --lcores). For tests and
  // demos on small machines: correctness, not speed, and a warning says so. Off: an error.
  bool share_cpus = false;
  // CPUs other pagewire processes' stream cores poll (CpuClaims): streams take them last,
  // and when free CPUs are too few for streams and control, the control thread (which mostly
  // sleeps) shares one of them so that the free ones go to this process's streams.
  std::set<unsigned> busy_cpus = {};
};

struct Plan {
  PortLocation port;
  PlacedCpu control;
  std::vector<PlacedCpu> streams;
  std::vector<PlacedCpu> helpers;
  std::vector<std::string> warnings;  // each names the cost of a fallback
  int numa_nodes = 1;
  std::uint64_t memory_megabytes = 0;
  std::set<unsigned> busy_cpus;  // as requested: other processes' stream CPUs

  // Several roles on one CPU: lcores are mapped with --lcores instead of -l.
  bool shares_cpus() const;
  // The control thread or a stream on a CPU another pagewire process's stream core polls.
  bool shares_cpus_with_others() const;
  std::vector<unsigned> stream_lcores() const;
  // -l <control,streams...> --main-lcore <control> (or --lcores 0@cpu,1@cpu,... when CPUs
  // are shared) and, on several nodes, --socket-mem.
  std::vector<std::string> eal_arguments() const;
  std::string to_text() const;
  std::string to_json() const;
};

Result<Plan> plan(const Topology& topology, const PlanRequest& request);

}  // namespace pagewire::pinning
