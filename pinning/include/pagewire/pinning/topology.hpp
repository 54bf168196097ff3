// The machine's topology as hwloc sees it: the live system, a saved XML (lstopo --of xml),
// or a synthetic description ("pack:2 [numa] core:8 pu:2"). pinning/ is the only place that
// talks to hwloc; its types stay out of this header.
#pragma once

#include <memory>
#include <string>

#include "pagewire/result.hpp"

struct hwloc_topology;

namespace pagewire::pinning {

class Topology {
 public:
  static Result<Topology> from_system();
  static Result<Topology> from_xml_file(const std::string& path);
  static Result<Topology> from_synthetic(const std::string& description);

  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;
  ~Topology();

  // "2 packages, 2 NUMA nodes, 16 cores, 32 PUs"
  std::string summary() const;
  // Where the topology came from, for logs and JSON.
  const std::string& source() const { return source_; }

  hwloc_topology* handle() const { return topology_; }

 private:
  Topology(hwloc_topology* topology, std::string source) : topology_(topology), source_(std::move(source)) {}
  hwloc_topology* topology_ = nullptr;
  std::string source_;
};

}  // namespace pagewire::pinning
