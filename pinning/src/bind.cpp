#include "pagewire/pinning/bind.hpp"

#include <hwloc.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace pagewire::pinning {

namespace {

Status require_this_system(const Topology& topology, const char* what) {
  if (hwloc_topology_is_thissystem(topology.handle()) == 0) {
    return make_error(std::string(what) + ": the topology came from " + topology.source() +
                      ", not this machine; load it with Topology::from_system()");
  }
  return Ok{};
}

}  // namespace

Status pin_current_thread(const Topology& topology, unsigned pu) {
  if (auto status = require_this_system(topology, "pinning a thread"); !status) return status;
  hwloc_obj_t object = hwloc_get_pu_obj_by_os_index(topology.handle(), pu);
  if (object == nullptr) return make_error("pinning a thread: no CPU " + std::to_string(pu) + " on this machine");
  if (hwloc_set_cpubind(topology.handle(), object->cpuset, HWLOC_CPUBIND_THREAD) != 0) {
    return make_error("pinning a thread to CPU " + std::to_string(pu) + " was refused: " + std::strerror(errno));
  }
  return Ok{};
}

Status bind_memory(const Topology& topology, void* address, std::size_t bytes, int node) {
  if (auto status = require_this_system(topology, "binding memory"); !status) return status;
  hwloc_obj_t numa = hwloc_get_numanode_obj_by_os_index(topology.handle(), static_cast<unsigned>(node));
  if (numa == nullptr) return make_error("binding memory: no NUMA node " + std::to_string(node) + " on this machine");
  if (hwloc_set_area_membind(topology.handle(), address, bytes, numa->nodeset, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_MIGRATE) != 0) {
    const int error = errno;
    return make_error("binding " + std::to_string(bytes >> 20) + " MiB to NUMA node " + std::to_string(node) +
                      " was refused by the kernel (" + std::strerror(error) + ")" +
                      (error == ENOSYS ? ": this system does not support memory binding" : ""));
  }
  return Ok{};
}

}  // namespace pagewire::pinning
