// ARP for pagewire's IPv4 endpoints: answer requests for our address on whatever queue they
// arrive, and resolve the next hop (the peer, or a gateway when the path is routed) before a
// session starts. A statically configured peer MAC skips resolution.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "pagewire/result.hpp"
#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/stop_reason.hpp"

namespace pagewire::transport {

struct QueueRef;

// If `mbuf` is an ARP request for `local`'s address, sends the reply on `queue` and returns
// true; if it is any other ARP frame, returns true too (consumed, nothing to do). Returns
// false for non-ARP frames. Never frees `mbuf`.
bool answer_arp(const rte_mbuf* mbuf, const Endpoint& local, const QueueRef& queue);

// Sends ARP requests for `ip` (every `interval_ms`, `tries` times) on `queue` and returns the
// MAC that answers. Requests for our own address are answered meanwhile; other frames are
// dropped (no session exists yet). kCancelled once `cancel` (if given) is set, at the next
// request.
Result<rte_ether_addr> resolve_mac(const QueueRef& queue, const Endpoint& local, std::uint32_t ip,
                                   std::uint32_t tries = 10, std::uint32_t interval_ms = 200,
                                   const StopReason* cancel = nullptr);

inline bool is_zero_mac(const rte_ether_addr& mac) { return rte_is_zero_ether_addr(&mac); }

}  // namespace pagewire::transport
