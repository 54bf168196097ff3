// One end's way onto the network: DPDK's EAL (started here unless the embedder runs it),
// the port with one queue pair per stream, the cores that poll them, and the addresses and
// keys a session needs. Source::connect and Destination::accept take a Link.
//
// Threading: open() and the Link belong to the embedder's control thread. One Link carries
// one migration at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::migration {

enum class UdpChecksumMode : std::uint8_t {
  kAuto,  // none on memory links (memif), the port's offload where it has one, else software
  kOn,    // always, in software where the port cannot
  kOff,
};

struct LinkConfig {
  // The port, exactly one of:
  std::string vdev;  // a DPDK virtual device, e.g. "net_memif0,role=server,socket=/run/pw.sock"
  std::string pci;   // a NIC bound to vfio-pci, e.g. "0000:81:00.0"
  // The embedder initialised EAL itself: the id of a port it has not started. pagewire then
  // starts no EAL, and its streams run on `stream_lcores` (EAL worker lcores the embedder
  // leaves idle), or on the calling thread when that is empty.
  int port_id = -1;
  std::vector<unsigned> stream_lcores;

  // When pagewire starts EAL: its --file-prefix (default pagewire-<name>-<pid>), and
  // arguments passed through verbatim.
  std::string name = "pagewire";
  std::string file_prefix;
  std::vector<std::string> eal_arguments;
  int control_cpu = -1;                // the control thread's CPU; -1: the placement plan's
  std::vector<unsigned> stream_cpus;   // one per stream; empty: the plan's NIC-local cores

  std::uint16_t streams = 1;
  std::uint16_t mtu = 9000;        // asked of the port; the path is probed
  std::uint32_t local_ip = 0;      // IPv4, host byte order
  std::uint32_t peer_ip = 0;
  std::uint32_t gateway_ip = 0;    // source: next-hop router; 0: the peer is on this link
  // The next hop's MAC towards the peer (the peer's own on one link); all zero: the source
  // asks ARP and the destination answers whichever MAC the HELLO came from. Set, the source
  // skips ARP and the destination takes a HELLO only from this MAC.
  std::array<std::uint8_t, 6> peer_mac{};
  std::uint16_t udp_port = 47000;  // stream s uses udp_port + s
  std::uint16_t vlan = 0;          // 802.1Q VLAN, 1..4094; 0: untagged
  // Both ends' pre-shared key (at least 32 bytes), or none: then nothing is authenticated.
  std::vector<std::uint8_t> pre_shared_key;
  bool encrypt = false;            // AES-256-GCM on every frame; needs the key
  UdpChecksumMode udp_checksum = UdpChecksumMode::kAuto;
  std::uint16_t rx_buffer_bytes = 0;   // 0: one buffer per frame; else RX scatter over these
  std::uint32_t idle_sleep_us = 0;     // a quiet stream core sleeps this long (shared CPUs)
  std::uint64_t window_memory_bytes = 256ull << 20;  // per stream, grown as the path needs
  std::uint32_t timeout_ms = 120000;   // for the port to start, the link, and the peer's HELLO
  // A path dark for longer than the peer timeout (5 s) while the guest still runs is waited
  // for this long, then the migration goes on where it stopped; 0: fail after the peer
  // timeout. The destination waits as long for a silent source (a dead one too).
  std::uint32_t resume_window_ms = 60000;
};

// Parse "10.0.0.1" and "02:00:00:00:00:01" for LinkConfig; the message names `what`.
Result<std::uint32_t> parse_ipv4(const std::string& text, const std::string& what);
Result<std::array<std::uint8_t, 6>> parse_mac(const std::string& text, const std::string& what);

class Link {
 public:
  static Result<Link> open(const LinkConfig& config);

  Link(Link&& other) noexcept;
  Link& operator=(Link&& other) noexcept;
  ~Link();

  // Waits until the port's link is up (a memif client and its server connected).
  Status await_up(std::uint32_t timeout_ms);
  // Any thread, any time (a signal watcher, for SIGINT): gives up what this Link is doing
  // or will do. await_up(), Source::connect and Destination::accept end at their next wait
  // (within about 200 ms) with kCancelled, telling a peer that already answered the HELLO
  // (ABORT), and a running migration is cancelled as by Source::cancel or
  // Destination::cancel. It stays cancelled: the next migration needs a new Link.
  void cancel(std::string_view reason);
  // Binds `memory` to the NUMA node of the port, where the stream cores touch it. Returns a
  // note when the kernel refuses (the migration works, paying the interconnect), else "".
  std::string bind_to_port_node(std::span<std::byte> memory) const;

  std::string port_name() const;
  std::array<std::uint8_t, 6> mac() const;
  std::uint16_t mtu() const;      // what the port accepted
  std::uint16_t queues() const;   // what the port gave: at most LinkConfig::streams
  std::vector<std::string> placement_warnings() const;

  struct Parts;  // transport and pinning objects, for the CLI (migration/internal/)
  Parts& parts() { return *parts_; }
  const Parts& parts() const { return *parts_; }

 private:
  explicit Link(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace pagewire::migration
