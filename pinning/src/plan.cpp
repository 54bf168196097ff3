#include "pagewire/pinning/plan.hpp"

#include <hwloc.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

namespace pagewire::pinning {

namespace {

struct Core {
  unsigned os_index;
  int node;
  std::vector<unsigned> pus;  // OS indexes; pus[0] is the one a stream takes
};

int node_of(hwloc_obj_t object) {
  const int first = object->nodeset != nullptr ? hwloc_bitmap_first(object->nodeset) : -1;
  return first < 0 ? 0 : first;
}

// Every physical core with its PUs, in OS order. Machines whose topology has no Core level
// (some VMs) count each PU as a core.
std::vector<Core> cores_of(hwloc_topology_t topology) {
  std::vector<Core> cores;
  const bool have_cores = hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_CORE) > 0;
  const hwloc_obj_type_t type = have_cores ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
  for (hwloc_obj_t object = nullptr; (object = hwloc_get_next_obj_by_type(topology, type, object)) != nullptr;) {
    Core core{object->os_index, node_of(object), {}};
    for (hwloc_obj_t pu = nullptr;
         (pu = hwloc_get_next_obj_inside_cpuset_by_type(topology, object->cpuset, HWLOC_OBJ_PU, pu)) != nullptr;) {
      core.pus.push_back(pu->os_index);
    }
    if (!core.pus.empty()) cores.push_back(core);
  }
  std::sort(cores.begin(), cores.end(), [](const Core& a, const Core& b) { return a.pus[0] < b.pus[0]; });
  return cores;
}

std::string join(const std::vector<unsigned>& values, char separator) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? std::string(1, separator) : "") + std::to_string(values[i]);
  return out;
}

// The core holding PU `pu`; null if the topology has no such PU.
const Core* core_of_pu(const std::vector<Core>& cores, unsigned pu) {
  for (const Core& core : cores) {
    if (std::find(core.pus.begin(), core.pus.end(), pu) != core.pus.end()) return &core;
  }
  return nullptr;
}

// Streams: a physical core each on the NIC's node; then SMT siblings there; then cores,
// then siblings, on other nodes. Never the control core or its sibling, unless the request
// lets streams share CPUs and the machine has too few.
Status place_streams(const Topology& topology, const std::vector<Core>& cores, const Core& control, int nic,
                     const PlanRequest& request, Plan* result) {
  struct Candidate {
    unsigned pu;
    const Core* core;
    int tier;  // 0 own core on the NIC's node, 1 sibling there, 2 own core elsewhere, 3 sibling elsewhere
    bool busy;  // another pagewire process's stream core polls it: taken only when nothing else is left
  };
  std::vector<Candidate> candidates;
  for (const bool busy : {false, true}) {
    for (int tier = 0; tier < 4; ++tier) {
      const bool sibling = tier % 2 == 1;
      const bool local = tier < 2;
      for (const Core& core : cores) {
        if (core.os_index == control.os_index && core.node == control.node) continue;
        if ((core.node == nic) != local) continue;
        for (std::size_t k = sibling ? 1 : 0; k < (sibling ? core.pus.size() : 1); ++k) {
          if ((request.busy_cpus.count(core.pus[k]) != 0) == busy) candidates.push_back({core.pus[k], &core, tier, busy});
        }
      }
    }
  }
  if (candidates.size() < request.streams && !request.share_cpus) {
    return make_error(std::to_string(request.streams) + " streams need as many CPUs besides the control core " +
                      std::to_string(control.pus[0]) + " and its siblings; " + topology.source() + " (" +
                      topology.summary() + ") offers " + std::to_string(candidates.size()));
  }
  // Sharing: the streams left over go round every CPU, the control core's first: the
  // control thread mostly sleeps, while a stream core beside another stream gets half a CPU.
  std::vector<Candidate> shared;
  for (unsigned pu : control.pus) shared.push_back({pu, &control, 4, false});
  shared.insert(shared.end(), candidates.begin(), candidates.end());
  for (std::uint16_t s = 0; s < request.streams; ++s) {
    const Candidate& c = s < candidates.size() ? candidates[s] : shared[(s - candidates.size()) % shared.size()];
    std::string why;
    if (s >= candidates.size()) {
      why = "shares CPU " + std::to_string(c.pu) + ": the machine has too few CPUs for a stream each";
    } else if (c.busy) {
      why = "a CPU another pagewire process's stream core polls: no free CPU is left";
    } else {
      switch (c.tier) {
        case 0: why = "a physical core of its own on the NIC's node " + std::to_string(nic); break;
        case 1: why = "SMT sibling on the NIC's node: not enough physical cores there"; break;
        case 2: why = "own core on node " + std::to_string(c.core->node) + ": the NIC's node is full"; break;
        default: why = "SMT sibling on node " + std::to_string(c.core->node) + ": every other CPU is taken"; break;
      }
    }
    result->streams.push_back({c.pu, c.core->os_index, c.core->node, why});
  }
  return Ok{};
}

// --cores: the CPUs given, one per stream, whatever they share.
Status place_chosen_streams(const Topology& topology, const std::vector<Core>& cores, const PlanRequest& request,
                            Plan* result) {
  if (request.stream_cpus.size() != request.streams) {
    return make_error("--cores: " + std::to_string(request.stream_cpus.size()) + " CPUs for " +
                      std::to_string(request.streams) + " streams: expected one per stream");
  }
  for (unsigned pu : request.stream_cpus) {
    const Core* core = core_of_pu(cores, pu);
    if (core == nullptr) {
      return make_error("--cores: CPU " + std::to_string(pu) + " is not one of " + topology.source() + " (" +
                        topology.summary() + ")");
    }
    result->streams.push_back({pu, core->os_index, core->node, "chosen with --cores"});
  }
  return Ok{};
}

// Names the cost of every fallback: a stream away from the NIC, or sharing a core or a CPU.
void warn_about_sharing(int nic, Plan* result) {
  for (std::size_t s = 0; s < result->streams.size(); ++s) {
    const PlacedCpu& placed = result->streams[s];
    const std::string stream = "stream " + std::to_string(s);
    if (placed.numa_node != nic) {
      result->warnings.push_back(stream + " runs on node " + std::to_string(placed.numa_node) +
                                 ", away from the NIC on node " + std::to_string(nic) +
                                 ": its frames and pages cross the socket interconnect");
    }
    if (placed.pu == result->control.pu) {
      result->warnings.push_back(stream + " shares CPU " + std::to_string(placed.pu) +
                                 " with the control thread: lcores oversubscribed (correctness, not speed)");
    }
    for (std::size_t other = 0; other < s; ++other) {
      const PlacedCpu& them = result->streams[other];
      if (them.pu == placed.pu) {
        result->warnings.push_back("streams " + std::to_string(other) + " and " + std::to_string(s) + " share CPU " +
                                   std::to_string(placed.pu) +
                                   ": lcores oversubscribed, each gets a share of it (correctness, not speed)");
      } else if (them.core == placed.core && them.numa_node == placed.numa_node) {
        result->warnings.push_back("streams " + std::to_string(other) + " and " + std::to_string(s) +
                                   " share physical core " + std::to_string(placed.core) +
                                   " (SMT siblings): each gets roughly half of it");
      }
    }
  }
}

// EAL lcore ids: each CPU's own number while every role has a CPU of its own; when some
// share, 0 for the control thread and 1.. for the streams, mapped with --lcores.
void assign_lcores(Plan* plan) {
  const bool shared = plan->shares_cpus();
  plan->control.lcore = shared ? 0 : plan->control.pu;
  for (std::size_t s = 0; s < plan->streams.size(); ++s) {
    plan->streams[s].lcore = shared ? static_cast<unsigned>(s + 1) : plan->streams[s].pu;
  }
}

// The control thread: off the NIC's node when there is another, so every NIC-local core is
// free for streams; otherwise the first core, where the OS keeps its own housekeeping. Cores
// other pagewire processes' streams poll are avoided, unless too few free ones are left for
// streams and control: then the control thread, which mostly sleeps, shares one of those.
Result<const Core*> place_control(const Topology& topology, const std::vector<Core>& cores, int nic,
                                  const PlanRequest& request, Plan* result) {
  if (request.control_cpu >= 0) {
    const Core* chosen = core_of_pu(cores, static_cast<unsigned>(request.control_cpu));
    if (chosen == nullptr) {
      return make_error("--cpu " + std::to_string(request.control_cpu) + ": not a CPU of " + topology.source() + " (" +
                        topology.summary() + ")");
    }
    result->control = {static_cast<unsigned>(request.control_cpu), chosen->os_index, chosen->node, "chosen with --cpu"};
    return chosen;
  }
  auto busy = [&](const Core& core) {
    return std::any_of(core.pus.begin(), core.pus.end(), [&](unsigned pu) { return request.busy_cpus.count(pu) != 0; });
  };
  const auto free_cores = static_cast<std::size_t>(std::count_if(cores.begin(), cores.end(), [&](const Core& c) { return !busy(c); }));
  const bool onto_busy = free_cores > 0 && free_cores < std::size_t{request.streams} + 1 && free_cores < cores.size();
  // Off the NIC's node first, among the cores of the wanted kind (free, or busy as above).
  const Core* chosen = nullptr;
  for (const bool off_node : {true, false}) {
    for (const Core& core : cores) {
      if (chosen == nullptr && busy(core) == onto_busy && (core.node != nic) == off_node) chosen = &core;
    }
  }
  if (chosen == nullptr) chosen = &cores.front();  // every core busy: plan as if none were
  std::string why = chosen->node != nic ? "off the NIC's node, so every core on node " + std::to_string(nic) +
                                              " is left for streams"
                                        : "on the NIC's node: no core off it is free";
  if (onto_busy) {
    why = "shares a CPU another pagewire process's stream core polls (the control thread mostly sleeps), leaving the " +
          std::to_string(free_cores) + " free one(s) to this process's streams";
  }
  result->control = {chosen->pus[0], chosen->os_index, chosen->node, why};
  return chosen;
}

}  // namespace

Result<PortLocation> locate_port(const Topology& topology, const std::string& port, int vdev_node) {
  static const std::regex kPci("^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$");
  PortLocation location{port, std::regex_match(port, kPci), 0, ""};
  hwloc_topology_t t = topology.handle();
  if (!location.pci) {
    if (hwloc_get_numanode_obj_by_os_index(t, static_cast<unsigned>(vdev_node)) == nullptr) {
      return make_error("--port " + port + ": a virtual device placed on NUMA node " + std::to_string(vdev_node) +
                        ", which this machine does not have");
    }
    location.numa_node = vdev_node;
    location.how = "virtual device: the node of its memory";
    return location;
  }
  const std::string busid = port.size() == 7 ? "0000:" + port : port;
  hwloc_obj_t device = hwloc_get_pcidev_by_busidstring(t, busid.c_str());
  if (device == nullptr) {
    return make_error("--port " + port + ": no PCI device " + busid + " in the topology of " + topology.source() +
                      " (lstopo lists the machine's devices)");
  }
  hwloc_obj_t ancestor = hwloc_get_non_io_ancestor_obj(t, device);
  if (ancestor == nullptr || ancestor->type == HWLOC_OBJ_MACHINE || ancestor->nodeset == nullptr ||
      hwloc_bitmap_weight(ancestor->nodeset) != 1) {
    location.numa_node = node_of(hwloc_get_root_obj(t));
    location.how = "PCI device not local to one NUMA node; using node " + std::to_string(location.numa_node);
    return location;
  }
  location.numa_node = node_of(ancestor);
  location.how = std::string("PCI device under ") + hwloc_obj_type_string(ancestor->type) + " " +
                 std::to_string(ancestor->logical_index);
  return location;
}

Result<Plan> plan(const Topology& topology, const PlanRequest& request) {
  if (request.streams == 0) return make_error("--streams: expected at least 1");
  auto location = locate_port(topology, request.port);
  if (!location) return location.error();
  const std::vector<Core> cores = cores_of(topology.handle());
  if (cores.empty()) return make_error("the topology of " + topology.source() + " has no CPUs");

  Plan result;
  result.port = *location;
  result.numa_nodes = std::max(1, hwloc_get_nbobjs_by_type(topology.handle(), HWLOC_OBJ_NUMANODE));
  result.memory_megabytes = request.memory_megabytes;
  result.busy_cpus = request.busy_cpus;
  const int nic = location->numa_node;

  auto control_core = place_control(topology, cores, nic, request, &result);
  if (!control_core) return control_core.error();
  const Core& control = **control_core;

  if (auto placed = request.stream_cpus.empty() ? place_streams(topology, cores, control, nic, request, &result)
                                                : place_chosen_streams(topology, cores, request, &result);
      !placed) {
    return placed.error();
  }
  std::set<unsigned> used{control.pus.begin(), control.pus.end()};
  for (const auto& stream : result.streams) used.insert(stream.pu);
  warn_about_sharing(nic, &result);
  assign_lcores(&result);

  // Helpers (guest model, I/O, reporting): free cores off the NIC's node first, then free
  // cores on it, then the control core's siblings, then the control core itself.
  std::vector<std::pair<unsigned, const Core*>> helper_slots;
  for (int pass = 0; pass < 2; ++pass) {
    for (const Core& core : cores) {
      if ((core.node == nic) != (pass == 1)) continue;
      if (std::any_of(core.pus.begin(), core.pus.end(), [&](unsigned pu) { return used.count(pu) != 0; })) continue;
      helper_slots.push_back({core.pus[0], &core});
    }
  }
  for (std::size_t k = 1; k < control.pus.size(); ++k) helper_slots.push_back({control.pus[k], &control});
  helper_slots.push_back({control.pus[0], &control});
  for (unsigned h = 0; h < request.helper_threads; ++h) {
    const auto& [pu, core] = helper_slots[std::min<std::size_t>(h, helper_slots.size() - 1)];
    const bool shares_control = core == &control;
    result.helpers.push_back({pu, core->os_index, core->node,
                              shares_control ? "shares the control core: no free core is left"
                                             : "a core no stream uses, off the NIC's node where possible"});
  }
  return result;
}

bool Plan::shares_cpus() const {
  std::set<unsigned> pus{control.pu};
  for (const auto& stream : streams) pus.insert(stream.pu);
  return pus.size() != streams.size() + 1;
}

bool Plan::shares_cpus_with_others() const {
  if (busy_cpus.count(control.pu) != 0) return true;
  return std::any_of(streams.begin(), streams.end(), [&](const PlacedCpu& s) { return busy_cpus.count(s.pu) != 0; });
}

std::vector<unsigned> Plan::stream_lcores() const {
  std::vector<unsigned> lcores;
  for (const auto& stream : streams) lcores.push_back(stream.lcore);
  return lcores;
}

std::vector<std::string> Plan::eal_arguments() const {
  std::vector<std::string> args;
  if (shares_cpus()) {
    std::string map = "0@" + std::to_string(control.pu);
    for (const auto& stream : streams) map += "," + std::to_string(stream.lcore) + "@" + std::to_string(stream.pu);
    args = {"--lcores", map, "--main-lcore", "0"};
  } else {
    std::vector<unsigned> lcores{control.pu};
    for (const auto& stream : streams) lcores.push_back(stream.pu);
    args = {"-l", join(lcores, ','), "--main-lcore", std::to_string(control.pu)};
  }
  if (numa_nodes > 1) {
    // Hugepage memory on the NIC's node; a little on the control core's for EAL itself.
    std::vector<unsigned> megabytes(static_cast<std::size_t>(numa_nodes), 0);
    if (control.numa_node < numa_nodes) megabytes[static_cast<std::size_t>(control.numa_node)] = 64;
    if (port.numa_node < numa_nodes) megabytes[static_cast<std::size_t>(port.numa_node)] = static_cast<unsigned>(memory_megabytes);
    args.push_back("--socket-mem");
    args.push_back(join(megabytes, ','));
  }
  return args;
}

std::string Plan::to_text() const {
  std::ostringstream out;
  out << "port " << port.port << ": NUMA node " << port.numa_node << " (" << port.how << ")\n";
  auto line = [&](const std::string& role, const PlacedCpu& cpu) {
    out << "  " << role << std::string(role.size() < 10 ? 10 - role.size() : 1, ' ') << "cpu " << cpu.pu << ", core "
        << cpu.core << ", node " << cpu.numa_node << ": " << cpu.why << "\n";
  };
  line("control", control);
  for (std::size_t s = 0; s < streams.size(); ++s) line("stream " + std::to_string(s), streams[s]);
  for (std::size_t h = 0; h < helpers.size(); ++h) line("helper " + std::to_string(h), helpers[h]);
  for (const auto& warning : warnings) out << "warning: " << warning << "\n";
  out << "EAL:";
  for (const auto& arg : eal_arguments()) out << " " << arg;
  out << "\n";
  return out.str();
}

std::string Plan::to_json() const {
  auto cpu = [](const PlacedCpu& c) {
    return nlohmann::json{{"cpu", c.pu}, {"core", c.core}, {"numa_node", c.numa_node}, {"why", c.why}};
  };
  auto lcore = [&](const PlacedCpu& c) {  // the control thread and the streams are EAL lcores; helpers are not
    nlohmann::json placed = cpu(c);
    placed["lcore"] = c.lcore;
    return placed;
  };
  nlohmann::json json{{"port", {{"name", port.port}, {"pci", port.pci}, {"numa_node", port.numa_node}, {"how", port.how}}},
                      {"control", lcore(control)},
                      {"streams", nlohmann::json::array()},
                      {"helpers", nlohmann::json::array()},
                      {"warnings", warnings},
                      {"eal_arguments", eal_arguments()}};
  for (const auto& s : streams) json["streams"].push_back(lcore(s));
  for (const auto& h : helpers) json["helpers"].push_back(cpu(h));
  return json.dump(2);
}

}  // namespace pagewire::pinning
