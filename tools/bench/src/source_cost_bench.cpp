#include "pagewire/bench/source_cost_bench.hpp"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <functional>
#include <numeric>
#include <ostream>
#include <random>
#include <span>
#include <vector>

#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/pagecodec/record.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/rigs/ring_pair.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/stream.hpp"
#include "pagewire/transport/wire.hpp"
#include "median.hpp"

namespace pagewire::bench {

namespace {

using namespace pagewire::transport;
using Clock = std::chrono::steady_clock;
constexpr std::uint32_t kPage = 4096;

// Runs `work[c]` on `lcores[c]`, all at once: lcores[0] is the caller's. They are released
// from one start line once every core has arrived (a worker's launch takes microseconds,
// which would otherwise count). Returns the seconds from the start until the last finished.
Result<double> run_together(std::span<const unsigned> lcores, const std::vector<std::function<void()>>& work) {
  struct StartLine {
    std::atomic<std::size_t> arrived{0};
    std::atomic<bool> go{false};
    Clock::time_point start;
    std::vector<Clock::time_point> finished;  // each core writes its own; read after the joins
  } line;
  line.finished.resize(work.size());
  struct Runner {
    StartLine* line;
    const std::function<void()>* work;
    std::size_t core;

    static int launched(void* self) {
      static_cast<Runner*>(self)->run();
      return 0;
    }
    void run() {
      if (line->arrived.fetch_add(1) + 1 == line->finished.size()) {
        line->start = Clock::now();
        line->go.store(true, std::memory_order_release);
      }
      while (!line->go.load(std::memory_order_acquire)) rte_pause();
      (*work)();
      line->finished[core] = Clock::now();
    }
  };
  std::vector<Runner> runners;
  for (std::size_t c = 0; c < work.size(); ++c) runners.push_back(Runner{&line, &work[c], c});
  for (std::size_t c = 1; c < work.size(); ++c) {
    if (const int failed = rte_eal_remote_launch(&Runner::launched, &runners[c], lcores[c]); failed != 0) {
      line.go.store(true, std::memory_order_release);  // those launched run their share and return
      for (std::size_t launched = 1; launched < c; ++launched) rte_eal_wait_lcore(lcores[launched]);
      return make_error("lcore " + std::to_string(lcores[c]) + " did not take its share: " + rte_strerror(-failed));
    }
  }
  runners[0].run();
  for (std::size_t c = 1; c < work.size(); ++c) rte_eal_wait_lcore(lcores[c]);
  return std::chrono::duration<double>(*std::max_element(line.finished.begin(), line.finished.end()) - line.start)
      .count();
}

}  // namespace

Result<SourceCostResult> run_source_cost_bench(const SourceCostOptions& options, std::ostream& progress) {
  if (options.region_bytes < kPage || options.region_bytes % kPage != 0 || options.repeats < 1) {
    return make_error("--region-mib and --repeats: expected a whole number of 4 KiB pages and at least one round");
  }
  const std::uint64_t pages = options.region_bytes / kPage;
  if (options.cores < 1 || options.cores > pages) {
    return make_error("--streams " + std::to_string(options.cores) + ": expected 1 to one per page");
  }
  std::vector<unsigned> lcores{rte_lcore_id()};
  unsigned worker = 0;
  RTE_LCORE_FOREACH_WORKER(worker) {
    if (lcores.size() < options.cores) lcores.push_back(worker);
  }
  if (lcores.size() < options.cores) {
    return make_error("--streams " + std::to_string(options.cores) + ": EAL has only " + std::to_string(lcores.size()) +
                      " lcores, one per stream is needed");
  }
  // The far end of the ring pair is never opened: each core empties its own queue's rings.
  auto sink = rigs::RingPair::create("sink", options.cores);
  if (!sink) return sink.error();
  // Nothing is acknowledged: the window holds every frame of a round, and one core's round
  // has every page on queue 0. A generous count: every byte cut into frames, plus a part
  // frame per page.
  const std::size_t payload_guess = payload_for_mtu(std::min<std::uint16_t>(options.mtu, kMaxPathMtu));
  const std::uint64_t frames =
      pages * (kPage + pagecodec::kRecordHeaderBytes) / (payload_guess - pagecodec::kRecordHeaderBytes) + pages + 64;
  if (frames > (1u << 20)) return make_error("--region-mib: at most 1 Mi frames per round; use a smaller region");
  const auto window = static_cast<std::uint32_t>(std::bit_ceil(frames));
  auto port = Port::open({.port_id = sink->a_port(), .queues = options.cores, .mtu = options.mtu,
                          .held_frames_per_queue = window, .name = "null"});
  if (!port) return port.error();
  if (port->reference_pool() == nullptr) {
    return make_error("net_ring offers no multi-segment TX here: frames cannot point at guest memory");
  }

  auto guest = sim::MappedMemory::allocate(options.region_bytes);  // pre-faulted
  auto copy_target = sim::MappedMemory::allocate(options.region_bytes);
  if (!guest || !copy_target) return make_error("cannot map the benchmark regions");
  std::mt19937_64 rng(5);
  for (std::size_t i = 0; i < options.region_bytes; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(guest->data() + i, &v, 8);
  }
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);
  // Contiguous ranges, as the session maps pages to streams.
  auto share = [&](std::size_t core, std::size_t cores) {
    const std::uint64_t first = pages * core / cores, end = pages * (core + 1) / cores;
    return std::span<const std::uint64_t>(all).subspan(first, end - first);
  };

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

  const auto memory = pagecodec::PageMap::contiguous(guest->data(), pages, kPage);
  std::uint64_t pages_by_reference = 0;
  // One round on fresh streams (empty windows), one per core; the frames they hold are
  // freed after the clock stops.
  auto timed_round = [&](std::size_t cores, bool by_reference) -> Result<double> {
    std::vector<SourceStream> streams;
    streams.reserve(cores);
    for (std::size_t c = 0; c < cores; ++c) {
      auto encoder = pagecodec::Encoder::create(encoding);
      if (!encoder) return encoder.error();
      const auto queue = static_cast<std::uint16_t>(c);
      const QueueRef ref{port->id(), queue, port->pool(),
                         ReferenceSegments{port->reference_pool(), port->reference_info(queue)}};
      streams.emplace_back(queue, ref, path, 1, payload_bytes, tuning, std::move(encoder).value(), nullptr);
      streams.back().assign(share(c, cores), &memory, 1, by_reference);
    }
    std::vector<std::function<void()>> work;
    for (std::size_t c = 0; c < cores; ++c) {
      work.emplace_back([&, c, expected = share(c, cores).size()] {
        SourceStream& stream = streams[c];
        for (;;) {
          stream.poll(rte_rdtsc());
          sink->drain(static_cast<std::uint16_t>(c));  // the device's reference, released as by a TX completion
          const pagecodec::EncoderCounters& encoded = stream.encoder().counters();
          const std::uint64_t done = std::accumulate(encoded.pages.begin(), encoded.pages.end(), std::uint64_t{0});
          if (done == expected && stream.counters().payload_bytes_sent == encoded.output_bytes &&
              stream.counters().frames_sent > 0) {
            return;
          }
        }
      });
    }
    const Result<double> seconds = run_together(std::span(lcores).first(cores), work);
    if (seconds && by_reference) {
      pages_by_reference = 0;
      for (const auto& stream : streams) pages_by_reference += stream.counters().pages_by_reference;
    }
    return seconds;
  };
  auto timed_memcpy = [&](std::size_t cores) {
    std::vector<std::function<void()>> work;
    for (std::size_t c = 0; c < cores; ++c) {
      work.emplace_back([&, c] {
        for (const std::uint64_t p : share(c, cores)) {
          std::memcpy(copy_target->data() + p * kPage, guest->data() + p * kPage, kPage);
        }
      });
    }
    return run_together(std::span(lcores).first(cores), work);
  };

  // Every kind of round, on one core and (with cores > 1) on all of them. The later of two
  // rounds finds warmer caches: the order turns by one kind every repeat.
  struct Kind {
    std::size_t cores;
    bool by_reference;
    std::vector<double> seconds;
  };
  std::vector<Kind> kinds{{1, false, {}}, {1, true, {}}};
  if (options.cores > 1) {
    kinds.push_back({options.cores, false, {}});
    kinds.push_back({options.cores, true, {}});
  }
  std::vector<double> memcpy_one, memcpy_all;
  // Untimed: the first pass over the pre-faulted regions still ran at a twentieth of the
  // speed of the later ones here.
  if (auto warm = timed_memcpy(options.cores); !warm) return warm.error();
  for (int r = 0; r < options.repeats; ++r) {
    const Result<double> on_one = timed_memcpy(1);
    if (!on_one) return on_one.error();
    memcpy_one.push_back(*on_one);
    if (options.cores > 1) {
      const Result<double> on_all = timed_memcpy(options.cores);
      if (!on_all) return on_all.error();
      memcpy_all.push_back(*on_all);
    }
    for (std::size_t k = 0; k < kinds.size(); ++k) {
      Kind& kind = kinds[(k + static_cast<std::size_t>(r)) % kinds.size()];
      auto seconds = timed_round(kind.cores, kind.by_reference);
      if (!seconds) return seconds.error();
      if (kind.by_reference && pages_by_reference != pages) {
        return make_error("only " + std::to_string(pages_by_reference) + " of " + std::to_string(pages) +
                          " pages went by reference");
      }
      kind.seconds.push_back(*seconds);
    }
    const double bits = static_cast<double>(options.region_bytes) * 8;
    progress << "  repeat " << r + 1 << ":";
    for (const Kind& kind : kinds) {
      progress << " " << (kind.by_reference ? "by reference " : "copying ") << bits / kind.seconds.back() / 1e9
               << " Gbit/s on " << kind.cores << (kind.cores == 1 ? " core," : " cores,");
    }
    progress << " memcpy " << bits / memcpy_one.back() / 1e9 << " Gbit/s on 1 core" << std::endl;
  }

  const double bits = static_cast<double>(options.region_bytes) * 8;
  auto gbps = [&](const std::vector<double>& seconds) {
    std::vector<double> rates;
    for (const double s : seconds) rates.push_back(bits / s / 1e9);
    return median(rates);
  };
  // Medians of ratios of rounds of the same repeat: neighbours in time share the machine's state.
  auto ratio = [](const std::vector<double>& slower, const std::vector<double>& faster) {
    std::vector<double> ratios;
    for (std::size_t r = 0; r < slower.size(); ++r) ratios.push_back(slower[r] / faster[r]);
    return median(ratios);
  };
  SourceCostResult result;
  result.mtu = port->mtu();
  result.copy_gbps = gbps(kinds[0].seconds);
  result.reference_gbps = gbps(kinds[1].seconds);
  result.memcpy_gbps = gbps(memcpy_one);
  result.copy_vs_memcpy = ratio(memcpy_one, kinds[0].seconds);
  result.reference_vs_copy = ratio(kinds[0].seconds, kinds[1].seconds);
  result.copy_ns_per_page = kPage * 8 / result.copy_gbps;
  result.reference_ns_per_page = kPage * 8 / result.reference_gbps;
  result.pages_by_reference = pages_by_reference;
  if (options.cores > 1) {
    result.scaling = SourceScaling{.cores = options.cores,
                                   .copy_gbps = gbps(kinds[2].seconds),
                                   .reference_gbps = gbps(kinds[3].seconds),
                                   .memcpy_gbps = gbps(memcpy_all),
                                   .copy_speedup = ratio(kinds[0].seconds, kinds[2].seconds),
                                   .reference_speedup = ratio(kinds[1].seconds, kinds[3].seconds),
                                   .memcpy_speedup = ratio(memcpy_one, memcpy_all)};
  }
  return result;
}

}  // namespace pagewire::bench
