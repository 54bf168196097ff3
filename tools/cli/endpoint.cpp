#include "cli/endpoint.hpp"

#include <cstdlib>
#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "cli/json_events.hpp"
#include "pagewire/migration/source_migration.hpp"
#include "pagewire/pagecodec/record.hpp"
#include "pagewire/transport/pre_shared_key.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

namespace {

// The key from --psk-file, else from $PAGEWIRE_PSK; none (empty) if neither is given.
Result<std::vector<std::uint8_t>> load_key(const LinkOptions& o) {
  std::optional<transport::PreSharedKey> key;
  if (!o.psk_file.empty()) {
    auto loaded = transport::PreSharedKey::from_file(o.psk_file);
    if (!loaded) return loaded.error();
    key = std::move(loaded).value();
  } else if (const char* hex = std::getenv(transport::kPreSharedKeyVariable); hex != nullptr && *hex != '\0') {
    auto loaded = transport::PreSharedKey::from_hex(hex, transport::kPreSharedKeyVariable);
    if (!loaded) return loaded.error();
    key = std::move(loaded).value();
  }
  if (o.encrypt && !key) {
    return make_error("--encrypt: needs a pre-shared key: --psk-file FILE, or hex in $" +
                      std::string(transport::kPreSharedKeyVariable));
  }
  if (!key) return std::vector<std::uint8_t>{};
  return std::vector<std::uint8_t>(key->bytes().begin(), key->bytes().end());
}

Result<migration::UdpChecksumMode> parse_udp_checksum(const std::string& text) {
  if (text == "auto") return migration::UdpChecksumMode::kAuto;
  if (text == "on") return migration::UdpChecksumMode::kOn;
  if (text == "off") return migration::UdpChecksumMode::kOff;
  return make_error("--udp-checksum " + text + ": expected auto, on or off");
}

Result<migration::LinkConfig> link_config(const LinkOptions& o, const char* role) {
  if (o.vdev.empty() == o.pci.empty()) return make_error("--vdev or --pci: expected exactly one port");
  if (o.window_memory_mib > (1u << 20)) {
    return make_error("--window-memory-mib " + std::to_string(o.window_memory_mib) + ": expected at most 1048576 (1 TiB)");
  }
  if (o.vlan > 4094) return make_error("--vlan " + std::to_string(o.vlan) + ": expected 1..4094, or 0 for untagged");
  if (o.interval_ms < 10) return make_error("--interval-ms " + std::to_string(o.interval_ms) + ": expected at least 10");
  auto key = load_key(o);
  if (!key) return key.error();
  auto udp_checksum = parse_udp_checksum(o.udp_checksum);
  if (!udp_checksum) return udp_checksum.error();
  auto local = migration::parse_ipv4(o.local_ip, "--local-ip");
  if (!local) return local.error();
  auto peer = migration::parse_ipv4(o.peer_ip, "--peer-ip");
  if (!peer) return peer.error();
  std::uint32_t gateway = 0;
  if (!o.gateway.empty()) {
    auto parsed = migration::parse_ipv4(o.gateway, "--gateway");
    if (!parsed) return parsed.error();
    gateway = *parsed;
  }
  auto stream_cpus = parse_cpu_list("cores", o.cores);
  if (!stream_cpus) return stream_cpus.error();
  migration::LinkConfig c;
  if (!o.peer_mac.empty()) {
    auto mac = migration::parse_mac(o.peer_mac, "--peer-mac");
    if (!mac) return mac.error();
    c.peer_mac = *mac;
  }
  c.vdev = o.vdev;
  c.pci = o.pci;
  c.name = role;
  c.file_prefix = o.file_prefix;
  c.control_cpu = o.cpu;
  c.stream_cpus = *stream_cpus;
  c.streams = o.streams;
  c.mtu = o.mtu;
  c.local_ip = *local;
  c.peer_ip = *peer;
  c.gateway_ip = gateway;
  c.udp_port = o.udp_port;
  c.vlan = o.vlan;
  c.pre_shared_key = std::move(key).value();
  c.encrypt = o.encrypt;
  c.udp_checksum = *udp_checksum;
  c.rx_buffer_bytes = o.rx_buffer_bytes;
  c.idle_sleep_us = o.idle_sleep_us;
  c.window_memory_bytes = o.window_memory_mib << 20;
  c.timeout_ms = o.timeout_s * 1000;
  c.resume_window_ms = o.resume_window_s * 1000;
  c.eal_arguments = o.eal_arguments;
  return c;
}

}  // namespace

void add_link_options(po::options_description& d, LinkOptions& o, bool source) {
  const std::string timeout_help =
      source ? "wait this long for the link and the destination's answer (the migration itself is bounded by "
               "--max-seconds)"
             : "wait this long for the link, the source's HELLO and, after the last round, its commit; the rounds "
               "take as long as the source keeps sending (it is given up after " +
                   std::to_string(transport::SessionConfig{}.peer_timeout_ms / 1000) + " s of silence)";
  d.add_options()
      ("help,h", "show this help")
      ("vdev", po::value(&o.vdev),
       "a virtual port, e.g. net_memif0,role=server,socket=/tmp/pw.sock (memif carries frames up to its bsize; "
       "without one it gets bsize=9216, for 9000-byte jumbo frames: give both ends the same; net_af_packet0,iface=IF "
       "gets ring frames that hold a frame of IF's MTU, which it leaves as it is)")
      ("pci", po::value(&o.pci), "or a NIC: its PCI address, e.g. 0000:81:00.0 (bound to vfio-pci)")
      ("file-prefix", po::value(&o.file_prefix), "DPDK file prefix (default: pagewire-<role>-<pid>)")
      ("size-mib", po::value(&o.size_mib)->default_value(o.size_mib), "guest memory in MiB; both ends must agree")
      ("page-size", po::value(&o.page_size)->default_value(o.page_size), "guest page size")
      ("streams", po::value(&o.streams)->default_value(o.streams), "streams (queue pairs)")
      ("mtu", po::value(&o.mtu)->default_value(o.mtu), "port MTU to ask for; the path is probed")
      ("local-ip", po::value(&o.local_ip)->default_value(source ? "10.0.0.1" : "10.0.0.2"), "this end's IPv4 address")
      ("peer-ip", po::value(&o.peer_ip)->default_value(source ? "10.0.0.2" : "10.0.0.1"), "the other end's IPv4 address")
      ("gateway", po::value(&o.gateway)->default_value(""), "next-hop router (source); empty: the peer is on-link")
      ("peer-mac", po::value(&o.peer_mac),
       "the next hop's MAC towards the peer (the peer's own on one link), e.g. 02:00:00:00:00:01: the source "
       "skips ARP, the destination takes a HELLO only from it. Default: ARP, and the HELLO's sender")
      ("udp-port", po::value(&o.udp_port)->default_value(o.udp_port), "first UDP port (stream s uses +s)")
      ("vlan", po::value(&o.vlan)->default_value(o.vlan), "802.1Q VLAN of this end's link, 1..4094; 0: untagged")
      ("max-state-kib", po::value(&o.max_state_kib)->default_value(o.max_state_kib), "room for device state")
      ("timeout-s", po::value(&o.timeout_s)->default_value(o.timeout_s), timeout_help.c_str())
      ("resume-window-s", po::value(&o.resume_window_s)->default_value(o.resume_window_s),
       source ? "a path dark for longer than the peer timeout (5 s) while the guest runs is waited for this long, "
                "then the migration goes on where it stopped; 0: fail after the peer timeout"
              : "how long a silent source is waited for while receiving (a dark path it rides out, or a dead "
                "source); 0: the peer timeout (5 s)")
      ("cpu", po::value(&o.cpu), "CPU for the control thread (default: the placement plan's control core)")
      ("cores", po::value(&o.cores),
       "CPUs for the stream cores, one per stream, e.g. 2,3,4,5 (default: the placement plan's: NIC-local physical "
       "cores of their own; `pagewire topo` shows it). A CPU given twice, or more streams than CPUs, is shared by "
       "several lcores, with a warning: correctness, not speed")
      ("json", po::bool_switch(&o.json), "one JSON object per event instead of text")
      ("interval-ms", po::value(&o.interval_ms)->default_value(o.interval_ms),
       "a progress event this often under --json (docs/json.md), at least 10")
      ("control-socket", po::value(&o.control_socket),
       source ? "serve a control channel on this Unix socket while migrating: JSON lines query, set (max_gbps, "
                "downtime_limit_ms) and cancel, as QEMU's QMP (docs/json.md)"
              : "serve a control channel on this Unix socket while receiving: JSON lines query and cancel "
                "(docs/json.md)")
      ("psk-file", po::value(&o.psk_file),
       "pre-shared key (hex or raw, at least 32 bytes, readable by its owner only), the same on both ends: the "
       "peer must prove it and every frame is authenticated. Default: hex in $PAGEWIRE_PSK, if set")
      ("encrypt", po::bool_switch(&o.encrypt),
       source ? "encrypt every frame too (AES-256-GCM); needs the key"
              : "refuse a source that does not encrypt; needs the key")
      ("rx-buffer-bytes", po::value(&o.rx_buffer_bytes)->default_value(o.rx_buffer_bytes),
       "receive buffers of this many bytes, at least 1024: larger frames are scattered over several (the device "
       "must offer RX scatter); 0: one frame per buffer")
      ("idle-sleep-us", po::value(&o.idle_sleep_us)->default_value(o.idle_sleep_us),
       "a stream core whose stream has been quiet for a while sleeps this long between polls: for hosts where "
       "other work (the other end, on one machine) shares the stream cores' CPUs. 0: poll without pause "
       "(20 us anyway where the plan shares CPUs between lcores)")
      ("udp-checksum", po::value(&o.udp_checksum)->default_value(o.udp_checksum),
       "UDP checksum of every frame: auto (none on memory links such as memif, which cannot corrupt a frame; "
       "computed by the port where it can), on (always; in software where the port cannot), off; both ends alike")
      ("window-memory-mib", po::value(&o.window_memory_mib)->default_value(o.window_memory_mib),
       "memory each stream's window may take (frames in flight at the source, held out of order at the "
       "destination), added as the path's bandwidth x delay needs it, never up front; the default covers 10 Gbit/s "
       "per stream over 150 ms")
      ("config", po::value<std::string>(), "read options from this file: one `name = value` per line");
}

std::vector<unsigned> cpus_of(const std::vector<pinning::PlacedCpu>& placed) {
  std::vector<unsigned> cpus;
  for (const auto& p : placed) cpus.push_back(p.pu);
  return cpus;
}

Result<Endpoint> bring_up(const LinkOptions& o, const char* role) {
  if (!pagecodec::is_valid_page_size(o.page_size)) {
    return make_error("--page-size " + std::to_string(o.page_size) + ": expected a power of two from 4096 to 65536");
  }
  if (o.size_mib == 0) return make_error("--size-mib: expected at least 1");
  auto config = link_config(o, role);
  if (!config) return config.error();
  auto link = migration::Link::open(*config);
  if (!link) return link.error();
  Endpoint endpoint{.link = std::move(link).value(),
                    .guest_pages = (o.size_mib << 20) / o.page_size,
                    .state_pages = migration::state_pages_for(o.max_state_kib << 10, o.page_size)};
  const pinning::Plan& plan = endpoint.plan();
  for (const auto& warning : plan.warnings) {
    if (!o.json) std::cerr << role << ": placement: " << warning << "\n";
  }
  // Without a key, anyone who can send to this port can start or disturb a session.
  if (!o.json && config->pre_shared_key.empty() && !endpoint.port().memory_link()) {
    std::cerr << role << ": warning: no pre-shared key on a network link: frames are neither authenticated nor "
              << "encrypted (--psk-file; docs/protocol.md, \"What a keyless session cannot defend against\")\n";
  }
  if (o.json) {
    // The port is started: its address (to find in a capture or a switch's table), and for
    // scripts the moment the device has settled (a tap PMD rewrites its kernel interface's
    // address until then).
    const transport::Port& port = endpoint.port();
    emit_event("port", {{"role", role}, {"name", port.name()}, {"mac", transport::mac_text(port.mac())},
                        {"mtu", port.mtu()}, {"queues", port.queues()}, {"control_cpu", plan.control.pu},
                        {"stream_cpus", cpus_of(plan.streams)}, {"placement_warnings", plan.warnings}});
  }
  return endpoint;
}

}  // namespace pagewire::cli
