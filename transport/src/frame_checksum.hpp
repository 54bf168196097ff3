// The UDP checksum over a segment chain, computed the same way where frames are built
// (frame_build.cpp) and checked (frame_parse.cpp).
#pragma once

#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstdint>

namespace pagewire::transport {

// The UDP checksum field's value for a datagram over a segment chain (0 in the field while
// summing, as sent): the sum of each piece, swapped where a piece starts at an odd offset.
// DPDK 22.11's rte_ipv4_udptcp_cksum_mbuf() came out differently for two layouts of the
// same bytes in our tests (a zero-copy chain and the same frame scattered anew), so chains
// are summed here, the same way on both ends.
std::uint16_t udp_checksum_of_chain(const rte_mbuf* mbuf, const rte_ipv4_hdr* ip, std::uint32_t udp_offset);

}  // namespace pagewire::transport
