// DPDK's Environment Abstraction Layer, initialised once per process.
#pragma once

#include <string>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::transport {

struct EalOptions {
  std::string program = "pagewire";
  std::string file_prefix;           // required: every DPDK process needs its own
  std::string lcores = "0";          // EAL -l list, when `placement` is empty
  std::vector<std::string> placement;  // core arguments from pinning::Plan::eal_arguments()
  std::vector<std::string> vdevs;    // e.g. "net_memif0,role=server,socket=/run/pw.sock"
  // PCI NICs to probe (EAL -a, bound to vfio-pci beforehand); none: the PCI bus is not scanned.
  std::vector<std::string> pci_devices;
  std::size_t no_huge_megabytes = 512;  // memory when hugepages are unavailable
  std::vector<std::string> extra;    // passed through verbatim (src/dst: what follows "--")
};

// True when 2 MiB hugepages are reserved and hugetlbfs is mounted.
bool hugepages_available();

// Builds the EAL argument list (adding --no-huge -m N when hugepages are unavailable) and
// calls rte_eal_init. A second call in the same process is refused.
Status init_eal(const EalOptions& options);

// The arguments init_eal would pass, for logs and tests.
std::vector<std::string> eal_arguments(const EalOptions& options);

}  // namespace pagewire::transport
