// One end of a migration or a link benchmark as the CLI brings it up: the options that say
// how it reaches its port (--vdev/--pci, addresses, keys, cores), and the link they open
// (EAL on the placement plan's cores, the port), announced in text or JSON.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "pagewire/migration/internal/link_parts.hpp"
#include "pagewire/migration/link.hpp"
#include "pagewire/pinning/plan.hpp"
#include "pagewire/result.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::cli {

// What both ends must agree on, and how each reaches its port.
struct LinkOptions {
  std::string vdev;
  std::string pci;
  std::string file_prefix;
  std::uint64_t size_mib = 1024;
  std::uint32_t page_size = 4096;
  std::uint16_t streams = 1;
  std::uint16_t mtu = 9000;
  std::string local_ip, peer_ip, gateway, peer_mac;
  std::uint16_t udp_port = 47000;
  std::uint16_t vlan = 0;
  std::uint64_t max_state_kib = 64;
  std::uint32_t timeout_s = 120;
  std::uint32_t resume_window_s = 60;  // LinkConfig::resume_window_ms
  int cpu = -1;  // the control thread's CPU; -1: from the placement plan
  std::string cores;  // the stream cores' CPUs, one per stream; empty: from the plan
  bool json = false;
  std::string psk_file;
  bool encrypt = false;
  std::uint16_t rx_buffer_bytes = 0;
  std::string udp_checksum = "auto";
  std::uint32_t idle_sleep_us = 0;
  std::uint64_t window_memory_mib = transport::StreamTuning{}.window_memory_bytes >> 20;
  std::vector<std::string> eal_arguments;  // after `--` on the command line
  std::string control_socket;  // empty: none
  std::uint32_t interval_ms = 100;  // between progress events
};

// The options above, in `d`; `source` words their help for the sending end.
void add_link_options(boost::program_options::options_description& d, LinkOptions& o, bool source);

// One end: its link (EAL, port, cores, addresses) and the region's shape.
struct Endpoint {
  migration::Link link;
  std::uint64_t guest_pages = 0;
  std::uint64_t state_pages = 0;

  transport::SessionConfig& config() { return link.parts().session; }
  transport::Port& port() { return *link.parts().port; }
  const pinning::Plan& plan() const { return link.parts().plan; }
};

// The link (migration::Link::open: EAL on the placement plan's cores, the port), announced:
// placement warnings and a missing key on a network link to stderr, or a "port" event.
Result<Endpoint> bring_up(const LinkOptions& o, const char* role);

std::vector<unsigned> cpus_of(const std::vector<pinning::PlacedCpu>& placed);

}  // namespace pagewire::cli
