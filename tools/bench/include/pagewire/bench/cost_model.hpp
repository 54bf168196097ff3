// `pagewire bench cost`: what each stage costs per page on one core, and from that how many
// cores each side needs to migrate memory at 25, 40 or 100 Gbit/s (line rate of memory, as
// in "vMotion needs ~6 cores for 100 GbE") per codec policy and image profile; a codec that
// shrinks pages then leaves the wire partly idle, and the model says how busy.
//
// The model: a page costs the source encode_ns + transport_ns_per_byte x wire bytes and the
// destination transport_ns_per_byte x wire bytes + decode_ns. Codec costs are measured here
// on reference images (scan and encode, decode). The transport's per-byte cost comes from
// the caller: a RAW round between two cores (`bench transport`), less the one copy per side
// that round includes, which the codec stages already count.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/sim/image.hpp"

namespace pagewire::bench {

struct CostModelOptions {
  std::uint64_t sample_bytes = 64ull << 20;  // of each profile
  std::uint32_t page_size = 4096;
  int repeats = 3;
  std::vector<sim::ImageProfile> profiles{sim::ImageProfile::kIdleVm, sim::ImageProfile::kDatabase, sim::ImageProfile::kRandom};
  std::vector<std::string> policies{"raw", "delta", "deflate", "full"};
  // The dirty round: this share of the pages re-sent after the guest wrote 64 bytes into each.
  double dirty_fraction = 0.1;
  double transport_ns_per_byte = 0;  // per side; see above
};

struct StageCost {
  std::string profile, policy;
  std::string round;  // "first" (every page, nothing cached) or "dirty" (re-sent after small writes)
  double encode_ns_per_page = 0;  // median over the repeats, zero scan included
  double decode_ns_per_page = 0;
  double wire_bytes_per_page = 0;  // record bytes, headers included
};

Result<std::vector<StageCost>> measure_stage_costs(const CostModelOptions& options, std::ostream& progress);

// Cores each side needs to move `memory_gbps` of guest memory (fractional).
struct CoresNeeded {
  double source = 0, destination = 0;
  double wire_gbps = 0;  // what the link then carries
};
CoresNeeded cores_for(const StageCost& cost, double transport_ns_per_byte, double memory_gbps, std::uint32_t page_size);

void print_cost_table(const std::vector<StageCost>& costs, const CostModelOptions& options, std::ostream& out);

// What sealing frames (transport/frame_crypto.hpp) adds per wire byte on one core: the
// source seals, the destination opens. Measured on frames of `payload_bytes` (MTU 9000's),
// in place as the transport does, beside a memcpy of the same bytes in the same passes.
struct SealCost {
  std::string mode;  // "authenticated" or "encrypted"
  double seal_ns_per_byte = 0, open_ns_per_byte = 0, memcpy_ns_per_byte = 0;  // medians
  // Cores one side adds to carry `wire_gbps` sealed.
  double seal_cores(double wire_gbps) const { return wire_gbps / 8 * seal_ns_per_byte; }
  double open_cores(double wire_gbps) const { return wire_gbps / 8 * open_ns_per_byte; }
};
std::vector<SealCost> measure_seal_costs(std::size_t payload_bytes, int repeats);
void print_seal_costs(const std::vector<SealCost>& costs, std::size_t payload_bytes, std::ostream& out);

}  // namespace pagewire::bench
