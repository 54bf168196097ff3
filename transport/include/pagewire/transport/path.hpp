// Who a session talks to: both ends' addresses, and how frames on the way are checked.
#pragma once

#include <rte_ether.h>

#include <cstdint>
#include <string>

namespace pagewire::transport {

struct Endpoint {
  rte_ether_addr mac;
  std::uint32_t ip;          // host byte order
  std::uint16_t udp_port;    // stream s uses udp_port + s, so NIC RSS/flow rules can split streams
  // The 802.1Q VLAN of this end's link (1..4094); 0: untagged. Frames we send carry it;
  // frames we take must carry it (in the frame, or stripped by the port into the mbuf).
  std::uint16_t vlan = 0;
};

// "10.0.0.2" for an address in host byte order.
std::string ip_text(std::uint32_t ip);
// "02:00:5E:00:01:01".
std::string mac_text(const rte_ether_addr& mac);
// "10.0.0.2 at 02:00:5e:00:01:01 on VLAN 100", for messages about a peer that stays silent.
std::string endpoint_text(const Endpoint& endpoint);

// Who we talk to, and how frames on the way are protected.
struct Path {
  Endpoint local;
  Endpoint peer;
  // UDP checksum over every frame. Off (checksum field 0, legal for UDP over IPv4) only on
  // memory links that cannot corrupt (net_ring, memif): it costs a pass over each frame in
  // software. Record CRC32C still covers page contents end to end when the policy asks.
  bool udp_checksum = true;
  // The port computes the checksums of frames we send (Port::tx_checksum_offload()): we
  // only fill in the UDP pseudo-header sum and flag the mbuf. The sessions set this from
  // their port.
  bool tx_checksum_offload = false;
};

}  // namespace pagewire::transport
