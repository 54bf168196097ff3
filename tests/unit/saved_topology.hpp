// The saved topologies of tests/data/topology (PAGEWIRE_TOPOLOGY_DIR), for the placement tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "pagewire/pinning/topology.hpp"

namespace pagewire::pinning::test {

inline Topology load_saved_topology(const std::string& name) {
  auto topology = Topology::from_xml_file(std::string(PAGEWIRE_TOPOLOGY_DIR) + "/" + name);
  EXPECT_TRUE(topology.ok()) << (topology.ok() ? "" : topology.error().message);
  return std::move(topology).value();
}

}  // namespace pagewire::pinning::test
