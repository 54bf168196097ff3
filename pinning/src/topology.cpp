#include "pagewire/pinning/topology.hpp"

#include <hwloc.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace pagewire::pinning {

namespace {

// Loads a topology with every PCI device kept: NIC locality needs them.
template <typename Configure>
Result<hwloc_topology_t> load(const std::string& what, Configure&& configure) {
  hwloc_topology_t topology = nullptr;
  if (hwloc_topology_init(&topology) != 0) return make_error("hwloc: cannot initialise a topology");
  if (hwloc_topology_set_io_types_filter(topology, HWLOC_TYPE_FILTER_KEEP_ALL) != 0 || !configure(topology) ||
      hwloc_topology_load(topology) != 0) {
    const std::string reason = std::strerror(errno);
    hwloc_topology_destroy(topology);
    return make_error("hwloc: cannot load the topology from " + what + ": " + reason);
  }
  return topology;
}

}  // namespace

Result<Topology> Topology::from_system() {
  auto topology = load("this system", [](hwloc_topology_t) { return true; });
  if (!topology) return topology.error();
  return Topology(*topology, "this system");
}

Result<Topology> Topology::from_xml_file(const std::string& path) {
  auto topology = load("XML file " + path, [&](hwloc_topology_t t) { return hwloc_topology_set_xml(t, path.c_str()) == 0; });
  if (!topology) return topology.error();
  return Topology(*topology, path);
}

Result<Topology> Topology::from_synthetic(const std::string& description) {
  auto topology = load("synthetic description \"" + description + "\"", [&](hwloc_topology_t t) {
    return hwloc_topology_set_synthetic(t, description.c_str()) == 0;
  });
  if (!topology) return topology.error();
  return Topology(*topology, "synthetic \"" + description + "\"");
}

Topology::Topology(Topology&& other) noexcept
    : topology_(std::exchange(other.topology_, nullptr)), source_(std::move(other.source_)) {}

Topology& Topology::operator=(Topology&& other) noexcept {
  if (this != &other) {
    if (topology_ != nullptr) hwloc_topology_destroy(topology_);
    topology_ = std::exchange(other.topology_, nullptr);
    source_ = std::move(other.source_);
  }
  return *this;
}

Topology::~Topology() {
  if (topology_ != nullptr) hwloc_topology_destroy(topology_);
}

std::string Topology::summary() const {
  auto count = [&](hwloc_obj_type_t type) { return std::to_string(hwloc_get_nbobjs_by_type(topology_, type)); };
  return count(HWLOC_OBJ_PACKAGE) + " packages, " + count(HWLOC_OBJ_NUMANODE) + " NUMA nodes, " +
         count(HWLOC_OBJ_CORE) + " cores, " + count(HWLOC_OBJ_PU) + " PUs";
}

}  // namespace pagewire::pinning
