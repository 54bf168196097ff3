#include "pagewire/tools/source_cost_bench.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <numeric>
#include <ostream>
#include <random>
#include <vector>

#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/pagecodec/record.hpp"
#include "pagewire/tools/mapped_memory.hpp"
#include "pagewire/tools/ring_pair.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/stream.hpp"
#include "pagewire/transport/wire.hpp"

namespace pagewire::tools {

namespace {

using namespace pagewire::transport;
using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kPage = 4096;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

Result<SourceCostResult> run_source_cost_bench(const SourceCostOptions& options, std::ostream& progress) {
  if (options.region_bytes < kPage || options.region_bytes % kPage != 0 || options.repeats < 1) {
    return make_error("--region-mib and --repeats: expected a whole number of 4 KiB pages and at least one round");
  }
  // The far end of the ring pair is never opened: its rings are emptied on this core.
  auto sink = RingPair::create("sink", 1);
  if (!sink) return sink.error();
  const std::uint64_t pages = options.region_bytes / kPage;
  // Nothing is acknowledged: the window holds every frame of a round. A generous count:
  // every byte cut into frames, plus a part frame per page.
  const std::size_t payload_guess = payload_for_mtu(std::min<std::uint16_t>(options.mtu, kMaxPathMtu));
  const std::uint64_t frames =
      pages * (kPage + pagecodec::kRecordHeaderBytes) / (payload_guess - pagecodec::kRecordHeaderBytes) + pages + 64;
  if (frames > (1u << 20)) return make_error("--region-mib: at most 1 Mi frames per round; use a smaller region");
  const auto window = static_cast<std::uint32_t>(std::bit_ceil(frames));
  auto port = Port::open({.port_id = sink->a_port(), .queues = 1, .mtu = options.mtu, .held_frames_per_queue = window,
                          .name = "null"});
  if (!port) return port.error();
  if (port->reference_pool() == nullptr) {
    return make_error("net_ring offers no multi-segment TX here: frames cannot point at guest memory");
  }

  auto guest = MappedMemory::allocate(options.region_bytes);  // pre-faulted
  auto copy_target = MappedMemory::allocate(options.region_bytes);
  if (!guest || !copy_target) return make_error("cannot map the benchmark regions");
  std::mt19937_64 rng(5);
  for (std::size_t i = 0; i < options.region_bytes; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(guest->data() + i, &v, 8);
  }
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);

  Path path;
  path.local = Endpoint{{{0x02, 0x50, 0x57, 0, 0, 1}}, 0x0a000001u, 47000};
  path.peer = Endpoint{{{0x02, 0x50, 0x57, 0, 0, 2}}, 0x0a000002u, 47000};
  path.udp_checksum = false;  // a NIC sums frames itself; the software sum is not the point here
  StreamTuning tuning;
  tuning.window_frames = tuning.receive_window_frames = window;
  tuning.initial_rto_us = tuning.min_rto_us = tuning.max_rto_us = 600'000'000;  // no timer fires
  tuning.congestion_control = StreamTuning::CongestionControl::kOff;
  tuning.burst = options.burst;
  pagecodec::EncoderConfig encoding;
  encoding.page_size = kPage;
  encoding.region_pages = pages;
  encoding.delta_cache_bytes = 0;
  encoding.policy.zero = encoding.policy.delta = encoding.policy.deflate = false;
  encoding.policy.crc = options.crc;
  const auto payload_bytes = static_cast<std::uint16_t>(payload_for_mtu(port->mtu()));
  const QueueRef queue{port->id(), 0, port->pool(), ReferenceSegments{port->reference_pool(), port->reference_info(0)}};

  std::uint64_t pages_by_reference = 0;
  // One round on a fresh stream (an empty window); the frames it holds are freed after the
  // clock stops.
  auto timed_round = [&](bool by_reference) -> Result<double> {
    auto encoder = pagecodec::Encoder::create(encoding);
    if (!encoder) return encoder.error();
    SourceStream stream(0, queue, path, 1, payload_bytes, tuning, std::move(encoder).value(), nullptr);
    stream.assign(all, guest->data(), 1, by_reference);
    const auto start = Clock::now();
    for (;;) {
      stream.poll(rte_rdtsc());
      sink->drain();  // the device's reference, released as by a TX completion
      const pagecodec::EncoderCounters& encoded = stream.encoder().counters();
      const std::uint64_t done = std::accumulate(encoded.pages.begin(), encoded.pages.end(), std::uint64_t{0});
      if (done == pages && stream.counters().payload_bytes_sent == encoded.output_bytes &&
          stream.counters().frames_sent > 0) {
        break;
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (by_reference) pages_by_reference = stream.counters().pages_by_reference;
    return seconds;
  };

  const double bits = static_cast<double>(options.region_bytes) * 8;
  std::vector<double> copies, copying, referencing, copy_ratios, reference_ratios;
  for (int r = 0; r < options.repeats; ++r) {
    const auto start = Clock::now();
    for (std::uint64_t p = 0; p < pages; ++p) std::memcpy(copy_target->data() + p * kPage, guest->data() + p * kPage, kPage);
    const double copy_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    // The second of two rounds finds warmer caches: the two kinds take turns going first.
    const bool reference_first = r % 2 == 1;
    Result<double> by_reference = 0.0;
    if (reference_first) by_reference = timed_round(true);
    const Result<double> copied = timed_round(false);
    if (!reference_first) by_reference = timed_round(true);
    if (!copied) return copied.error();
    if (!by_reference) return by_reference.error();
    copies.push_back(bits / copy_seconds / 1e9);
    copying.push_back(bits / *copied / 1e9);
    referencing.push_back(bits / *by_reference / 1e9);
    copy_ratios.push_back(copy_seconds / *copied);
    reference_ratios.push_back(*copied / *by_reference);
    progress << "  repeat " << r + 1 << ": copying " << copying.back() << " Gbit/s, by reference "
             << referencing.back() << " Gbit/s (memcpy " << copies.back() << ")" << std::endl;
  }
  SourceCostResult result;
  result.mtu = port->mtu();
  result.copy_gbps = median(copying);
  result.reference_gbps = median(referencing);
  result.memcpy_gbps = median(copies);
  result.copy_vs_memcpy = median(copy_ratios);
  result.reference_vs_copy = median(reference_ratios);
  result.copy_ns_per_page = kPage * 8 / result.copy_gbps;
  result.reference_ns_per_page = kPage * 8 / result.reference_gbps;
  result.pages_by_reference = pages_by_reference;
  if (pages_by_reference != pages) {
    return make_error("only " + std::to_string(pages_by_reference) + " of " + std::to_string(pages) +
                      " pages went by reference");
  }
  return result;
}

}  // namespace pagewire::tools
