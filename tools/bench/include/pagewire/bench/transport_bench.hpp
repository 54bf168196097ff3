// `pagewire bench transport`: page rounds over a net_ring pair between two pinned lcores
// (source on the main lcore, destination on a worker lcore). Each repeat times a memcpy of
// the same pages, a lossless round, with loss > 0 a lossy round, and the same round over
// kernel TCP on the same two CPUs, back to back in one session: the VM's cross-core latency drifts several-fold, so only ratios of neighbouring
// passes mean anything. Needs an initialised EAL with two lcores.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/rigs/middlebox.hpp"
#include "pagewire/transport/stream.hpp"

namespace pagewire::bench {

struct TransportBenchOptions {
  std::uint64_t region_bytes = 256ull << 20;
  std::uint16_t streams = 1;
  std::uint16_t mtu = 9000;
  int repeats = 5;
  double loss = 0;         // per-frame drop probability of the lossy rounds (0: none)
  bool crc = false;        // record CRC32C (off: measure the transport, not the checksum)
  bool udp_checksum = false;  // memory links (net_ring, memif) carry frames intact; --udp-checksum sums them
  std::uint32_t window_frames = 1024;
  std::uint16_t burst = 32;
  double pace_bytes_per_second = 0;  // the source's own rate limit; 0: none
  transport::StreamTuning::CongestionControl congestion_control = transport::StreamTuning::CongestionControl::kAuto;
  // Sealed frames (a key made for the run): AES-256-GCM authentication, and encryption too.
  bool authenticate = false;
  bool encrypt = false;
  // Also time rounds declared stable (a paused guest), whose RAW pages go by reference
  // (zero-copy), interleaved with the copying ones.
  bool zero_copy = false;
  // Impairments of the link itself (delay, jitter, rate cap, bursty loss...): a rigs::Middlebox
  // forwarder then stands between the ends. The kernel-TCP pass is skipped (it would not
  // cross the same link).
  rigs::LinkImpairment link;
  bool impaired_link = false;
  int numa_node = -1;      // bind the page regions to this node (the port's); -1: leave them
  // Each stream polled by an EAL lcore of its own at both ends (StreamRunner), as src/dst
  // run: 2 x streams worker lcores besides the main one, whose control threads only wait. Off:
  // the source's streams on the main lcore, the destination's on one worker. The kernel-TCP
  // pass is skipped (its two threads would compete with idle stream cores), and memcpy runs
  // on as many threads as there are streams.
  bool stream_cores = false;
};

struct TransportBenchResult {
  double gbps = 0;            // guest bits per second, median lossless round
  double memcpy_gbps = 0;     // memcpy of the same pages, median of the interleaved passes
  double vs_memcpy = 0;       // median of per-repeat ratios lossless / memcpy
  double vs_cap = 0;          // lossless rounds / the link's rate cap, when there is one
  double tcp_gbps = 0;        // the same pages and codec over kernel TCP (tcp_baseline.hpp)
  double vs_tcp = 0;          // median of per-repeat ratios lossless / kernel TCP
  double zero_copy_gbps = 0;       // median stable round (pages by reference)
  double zero_copy_vs_memcpy = 0;  // median of per-repeat ratios stable round / memcpy
  double zero_copy_vs_copy = 0;    // median of per-repeat ratios stable round / copying round
  std::uint64_t pages_by_reference = 0;
  double lossy_gbps = 0;      // median lossy round
  double lossy_vs_lossless = 0;  // median of per-repeat ratios lossy / lossless
  std::uint64_t retransmits_timeout = 0;
  std::uint64_t retransmits_sack = 0;
  std::uint64_t srtt_us = 0;
  std::uint64_t dropped = 0;
  std::uint16_t path_mtu = 0;
  bool congestion_controlled = false;  // what kAuto chose, or what was asked
  std::string memory_note;  // what binding the regions to the port's node did
  std::vector<unsigned> source_lcores, destination_lcores;  // stream cores, when stream_cores
};

Result<TransportBenchResult> run_transport_bench(const TransportBenchOptions& options, std::ostream& progress);

}  // namespace pagewire::bench
