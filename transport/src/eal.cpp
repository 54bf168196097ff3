#include "pagewire/transport/eal.hpp"

#include <rte_eal.h>
#include <rte_errno.h>

#include <cstdlib>
#include <fstream>
#include <mutex>

namespace pagewire::transport {

bool hugepages_available() {
  std::ifstream free_pages("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  std::size_t count = 0;
  if (!(free_pages >> count) || count == 0) return false;
  std::ifstream mounts("/proc/mounts");
  std::string device, mount_point, type;
  std::string rest;
  while (mounts >> device >> mount_point >> type && std::getline(mounts, rest)) {
    if (type == "hugetlbfs") return true;
  }
  return false;
}

std::vector<std::string> eal_arguments(const EalOptions& options) {
  std::vector<std::string> args = {options.program};
  if (options.placement.empty()) {
    args.insert(args.end(), {"-l", options.lcores});
  } else {
    args.insert(args.end(), options.placement.begin(), options.placement.end());
  }
  args.insert(args.end(), {"--file-prefix=" + options.file_prefix, "--log-level=lib.eal:error"});
  if (options.pci_devices.empty()) args.push_back("--no-pci");
  for (const auto& device : options.pci_devices) args.insert(args.end(), {"-a", device});
  if (const char* level = std::getenv("PAGEWIRE_DPDK_LOG")) args.push_back(std::string("--log-level=") + level);
  if (!hugepages_available()) {
    args.push_back("--no-huge");
    args.push_back("-m");
    args.push_back(std::to_string(options.no_huge_megabytes));
  }
  for (const auto& vdev : options.vdevs) {
    args.push_back("--vdev=" + vdev);
    // memif's zero-copy client shares EAL's memory with its server as memif regions, one
    // per memory file: the PMD refuses it unless hugepages are single-file segments.
    if (vdev.rfind("net_memif", 0) == 0 && vdev.find("zero-copy=yes") != std::string::npos) {
      args.push_back("--single-file-segments");
    }
  }
  args.insert(args.end(), options.extra.begin(), options.extra.end());
  return args;
}

Status init_eal(const EalOptions& options) {
  static std::once_flag once;
  static bool initialised = false;
  bool first = false;
  std::call_once(once, [&] { first = true; });
  if (!first) {
    return make_error(initialised ? "DPDK EAL is already initialised in this process"
                                  : "DPDK EAL initialisation failed earlier in this process");
  }
  if (options.file_prefix.empty()) {
    return make_error("EAL file prefix: expected a name unique to this process");
  }
  std::vector<std::string> args = eal_arguments(options);
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    return make_error(std::string("rte_eal_init failed: ") + rte_strerror(rte_errno));
  }
  initialised = true;
  return Ok{};
}

}  // namespace pagewire::transport
