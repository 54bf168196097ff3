// pagewire topo
#include <boost/program_options.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "pagewire/pinning/cpu_claims.hpp"
#include "pagewire/pinning/plan.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int topo(const std::vector<std::string>& args) {
  pinning::PlanRequest request;
  std::string topology_file, synthetic;
  bool json = false;
  std::string cores;
  po::options_description d("topo options");
  d.add_options()
      ("help,h", "show this help")
      ("streams", po::value(&request.streams)->default_value(request.streams), "streams (one core each)")
      ("port", po::value(&request.port)->default_value("net_ring0"),
       "PCI address (0000:81:00.0) or virtual device name (net_memif0)")
      ("helpers", po::value(&request.helper_threads)->default_value(request.helper_threads),
       "non-EAL threads to place (guest model, I/O, reporting)")
      ("memory-mb", po::value(&request.memory_megabytes)->default_value(request.memory_megabytes),
       "hugepage memory for the port's NUMA node")
      ("topology", po::value(&topology_file), "plan for a saved topology (lstopo --of xml) instead of this machine")
      ("synthetic", po::value(&synthetic), "plan for a synthetic topology, e.g. \"pack:2 [numa] core:8 pu:2\"")
      ("cpu", po::value(&request.control_cpu), "the control thread's CPU, as src/dst --cpu")
      ("cores", po::value(&cores), "the stream cores' CPUs, one per stream, as src/dst --cores")
      ("share-cpus", po::bool_switch(&request.share_cpus),
       "on a machine with too few CPUs, let streams share them (lcores of their own, EAL --lcores), as src/dst do")
      ("json", po::bool_switch(&json), "print the plan as JSON");
  if (auto done = parse_options(args, d, "pagewire topo [options]")) return *done;
  auto stream_cpus = parse_cpu_list("cores", cores);
  if (!stream_cpus) {
    std::cerr << "pagewire: " << stream_cpus.error().message << "\n";
    return 2;
  }
  request.stream_cpus = *stream_cpus;
  if (!topology_file.empty() && !synthetic.empty()) {
    std::cerr << "pagewire: --topology and --synthetic: expected at most one of them\n";
    return 2;
  }
  auto topology = !topology_file.empty() ? pinning::Topology::from_xml_file(topology_file)
                  : !synthetic.empty()   ? pinning::Topology::from_synthetic(synthetic)
                                         : pinning::Topology::from_system();
  if (!topology) {
    std::cerr << "pagewire: " << topology.error().message << "\n";
    return 1;
  }
  if (topology_file.empty() && synthetic.empty()) {
    // This machine: plan around the CPUs running pagewire processes' stream cores hold, as src/dst do.
    auto held = pinning::CpuClaims::held_elsewhere(pinning::CpuClaims::default_directory());
    if (!held) {
      std::cerr << "pagewire: " << held.error().message << "\n";
      return 1;
    }
    for (const auto& [cpu, pid] : *held) request.busy_cpus.insert(cpu);
  }
  auto placement = pinning::plan(*topology, request);
  if (!placement) {
    std::cerr << "pagewire: " << placement.error().message << "\n";
    return 1;
  }
  if (json) {
    std::cout << placement->to_json() << "\n";
  } else {
    std::cout << "placement on " << topology->source() << " (" << topology->summary() << ")\n" << placement->to_text();
  }
  return 0;
}

}  // namespace pagewire::cli
