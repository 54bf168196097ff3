// The kernel-TCP baseline: the same page stream over a plain TCP connection per stream,
// which is what QEMU's migration and a user without DPDK would use. The sender encodes its
// stream's pages with the same pagecodec Encoder into the same record byte stream (records
// delimit themselves, so TCP needs no more framing); the receiver parses and applies them
// with the same Decoder. Stream s carries the same contiguous page range as in pagewire.
#pragma once

#include <cstdint>
#include <span>

#include "pagewire/pagecodec/policy.hpp"
#include "pagewire/result.hpp"

namespace pagewire::bench {

struct TcpBaselineOptions {
  std::uint16_t streams = 1;
  std::uint32_t page_size = 4096;
  pagecodec::Policy policy;  // the codec of the pagewire run it stands beside
  // Each side's threads are pinned here (OS CPU numbers; -1: left to the scheduler).
  int sender_cpu = -1;
  int receiver_cpu = -1;
};

// One round of every page of `source` into `destination` (the same size) over loopback TCP.
// Connections are set up first and not timed; returns the seconds from the first byte sent
// to the last page applied. The destination is checked by the caller.
Result<double> tcp_round(std::span<const std::byte> source, std::span<std::byte> destination,
                         const TcpBaselineOptions& options);

}  // namespace pagewire::bench
