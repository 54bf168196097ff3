#include "pagewire/migration/link.hpp"

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "pagewire/migration/internal/link_parts.hpp"
#include "pagewire/pinning/bind.hpp"
#include "pagewire/transport/eal.hpp"
#include "pagewire/transport/pre_shared_key.hpp"

namespace pagewire::migration {

namespace {

Status check(const LinkConfig& c) {
  const int ports = int{!c.vdev.empty()} + int{!c.pci.empty()} + int{c.port_id >= 0};
  if (ports != 1) return make_error(ErrorCode::kConfiguration, "link: expected exactly one of vdev, pci and port_id");
  if (c.port_id >= RTE_MAX_ETHPORTS) {
    return make_error(ErrorCode::kConfiguration, "link: port_id " + std::to_string(c.port_id) + ": expected below " +
                                                     std::to_string(RTE_MAX_ETHPORTS));
  }
  if (c.streams == 0) return make_error(ErrorCode::kConfiguration, "link: streams: expected at least 1");
  if (c.vlan > 4094) {
    return make_error(ErrorCode::kConfiguration,
                      "link: vlan " + std::to_string(c.vlan) + ": expected 1..4094, or 0 for untagged");
  }
  if (c.window_memory_bytes > (1ull << 40)) {
    return make_error(ErrorCode::kConfiguration, "link: window_memory_bytes: expected at most 1 TiB");
  }
  if (c.local_ip == 0 || c.peer_ip == 0) {
    return make_error(ErrorCode::kConfiguration, "link: local_ip and peer_ip: expected IPv4 addresses");
  }
  if (c.encrypt && c.pre_shared_key.empty()) {
    return make_error(ErrorCode::kConfiguration, "link: encrypt needs a pre_shared_key");
  }
  return Ok{};
}

Result<transport::SessionSecurity> security_of(const LinkConfig& c) {
  transport::SessionSecurity security;
  security.encrypt = c.encrypt;
  if (!c.pre_shared_key.empty()) {
    auto key = transport::PreSharedKey::from_bytes(c.pre_shared_key, "link: pre_shared_key");
    if (!key) return make_error(ErrorCode::kConfiguration, key.error().message);
    security.key = std::move(key).value();
  }
  return security;
}

transport::UdpChecksum checksum_of(UdpChecksumMode mode) {
  switch (mode) {
    case UdpChecksumMode::kOn: return transport::UdpChecksum::kOn;
    case UdpChecksumMode::kOff: return transport::UdpChecksum::kOff;
    case UdpChecksumMode::kAuto: break;
  }
  return transport::UdpChecksum::kAuto;
}

// EAL for this process, with the placement plan's cores: the control thread on the plan's
// control core, each stream on a core of its own, around the CPUs other pagewire processes'
// stream cores hold (claimed for as long as the link lives).
Status start_eal(const LinkConfig& c, Link::Parts* parts) {
  auto topology = pinning::Topology::from_system();
  if (!topology) return make_error(ErrorCode::kSystem, topology.error().message);
  auto claimed = pinning::plan_and_claim(*topology,
                                         {.streams = c.streams,
                                          .port = c.pci.empty() ? "vdev" : c.pci,
                                          .helper_threads = 1,
                                          .control_cpu = c.control_cpu,
                                          .stream_cpus = c.stream_cpus,
                                          .share_cpus = true},
                                         pinning::CpuClaims::default_directory());
  if (!claimed) return make_error(ErrorCode::kConfiguration, claimed.error().message);
  transport::EalOptions eal;
  eal.program = "pagewire-" + c.name;
  eal.file_prefix = c.file_prefix.empty() ? "pagewire-" + c.name + "-" + std::to_string(getpid()) : c.file_prefix;
  eal.placement = claimed->plan.eal_arguments();
  if (!c.vdev.empty()) eal.vdevs = {transport::sized_for_jumbo_frames(c.vdev)};
  if (!c.pci.empty()) eal.pci_devices = {c.pci};
  eal.extra = c.eal_arguments;
  if (auto status = transport::init_eal(eal); !status) return make_error(ErrorCode::kSystem, status.error().message);
  if (rte_eth_dev_count_avail() == 0) {
    return make_error(ErrorCode::kConfiguration,
                      c.pci.empty() ? "vdev " + c.vdev + ": DPDK made no port of it"
                                    : "pci " + c.pci + ": DPDK found no port there (is it bound to vfio-pci?)");
  }
  parts->owns_eal = true;
  parts->session.stream_lcores = claimed->plan.stream_lcores();
  const bool sharing = claimed->plan.shares_cpus() || claimed->plan.shares_cpus_with_others();
  // Lcores that share a CPU, with each other or another process, yield it while idle.
  if (sharing && parts->session.runner.idle_sleep_us == 0) parts->session.runner.idle_sleep_us = 20;
  parts->plan = std::move(claimed->plan);
  parts->cpu_claims = std::move(claimed->claims);
  parts->topology.emplace(std::move(topology).value());
  return Ok{};
}

}  // namespace

Result<std::uint32_t> parse_ipv4(const std::string& text, const std::string& what) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  char extra = 0;
  if (std::sscanf(text.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4 || a > 255 || b > 255 || c > 255 ||
      d > 255) {
    return make_error(ErrorCode::kConfiguration, what + " " + text + ": expected an IPv4 address like 10.0.0.1");
  }
  return a << 24 | b << 16 | c << 8 | d;
}

Result<std::array<std::uint8_t, 6>> parse_mac(const std::string& text, const std::string& what) {
  std::array<unsigned, 6> parts{};
  char extra = 0;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &parts[0], &parts[1], &parts[2], &parts[3], &parts[4],
                  &parts[5], &extra) != 6) {
    return make_error(ErrorCode::kConfiguration, what + " " + text + ": expected a MAC address like 02:00:00:00:00:01");
  }
  std::array<std::uint8_t, 6> mac{};
  for (std::size_t i = 0; i < mac.size(); ++i) mac[i] = static_cast<std::uint8_t>(parts[i]);
  return mac;
}

Result<Link> Link::open(const LinkConfig& c) {
  if (Status valid = check(c); !valid) return valid.error();
  auto security = security_of(c);
  if (!security) return security.error();
  auto parts = std::make_unique<Parts>();
  parts->session.runner.idle_sleep_us = c.idle_sleep_us;
  if (c.port_id < 0) {
    if (Status started = start_eal(c, parts.get()); !started) return started.error();
  } else {
    parts->session.stream_lcores = c.stream_lcores;
  }
  auto port = transport::Port::open({.port_id = static_cast<std::uint16_t>(c.port_id < 0 ? 0 : c.port_id),
                                     .queues = c.streams,
                                     .mtu = c.mtu,
                                     .held_frames_per_queue = 4096,
                                     .buffer_bytes = c.rx_buffer_bytes,
                                     .start_wait_ms = c.timeout_ms,
                                     .name = c.name});
  if (!port) return make_error(ErrorCode::kSystem, port.error().message);
  parts->port = std::make_unique<transport::Port>(std::move(port).value());
  transport::SessionConfig& s = parts->session;
  s.cancel = &parts->cancel;
  s.streams = c.streams;
  s.path.local = transport::Endpoint{parts->port->mac(), c.local_ip, c.udp_port, c.vlan};
  s.path.peer = transport::Endpoint{{}, c.peer_ip, c.udp_port};  // resolved by ARP / learnt from HELLO
  std::copy(c.peer_mac.begin(), c.peer_mac.end(), s.path.peer.mac.addr_bytes);
  s.next_hop_ip = c.gateway_ip;
  s.hello_timeout_ms = c.timeout_ms;
  s.resume_window_ms = c.resume_window_ms;
  s.security = std::move(security).value();
  s.udp_checksum = checksum_of(c.udp_checksum);
  s.tuning.window_memory_bytes = c.window_memory_bytes;
  return Link(std::move(parts));
}

Link::Parts::~Parts() {
  port.reset();
  if (!owns_eal) return;
  // DPDK 22.11's cleanup releases the memory but leaves its runtime directory (~1.8 MB of
  // memseg maps per process under /var/run/dpdk): this process's prefix is ours to remove.
  const std::filesystem::path runtime = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  if (!runtime.empty()) std::filesystem::remove_all(runtime, ignored);
}

Link::Link(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Link::Link(Link&& other) noexcept = default;
Link& Link::operator=(Link&& other) noexcept = default;
Link::~Link() = default;

Status Link::await_up(std::uint32_t timeout_ms) {
  auto up = parts_->port->await_link(timeout_ms, &parts_->cancel);
  if (!up) return make_error(up.error().code == ErrorCode::kCancelled ? ErrorCode::kCancelled : ErrorCode::kPath, up.error().message);
  return Ok{};
}

void Link::cancel(std::string_view reason) { parts_->cancel.set(reason); }

std::string Link::bind_to_port_node(std::span<std::byte> memory) const {
  if (parts_->plan.numa_nodes <= 1 || !parts_->topology) return "";
  const Status bound = pinning::bind_memory(*parts_->topology, memory.data(), memory.size(), parts_->plan.port.numa_node);
  return bound ? "" : "note: " + bound.error().message;
}

std::string Link::port_name() const { return parts_->port->name(); }

std::array<std::uint8_t, 6> Link::mac() const {
  std::array<std::uint8_t, 6> mac{};
  std::copy(std::begin(parts_->port->mac().addr_bytes), std::end(parts_->port->mac().addr_bytes), mac.begin());
  return mac;
}

std::uint16_t Link::mtu() const { return parts_->port->mtu(); }
std::uint16_t Link::queues() const { return parts_->port->queues(); }
std::vector<std::string> Link::placement_warnings() const { return parts_->plan.warnings; }

}  // namespace pagewire::migration
