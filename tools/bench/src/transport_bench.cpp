#include "pagewire/bench/transport_bench.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <numeric>
#include <ostream>
#include <random>
#include <thread>

#include "pagewire/pinning/bind.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/rigs/ring_pair.hpp"
#include "pagewire/rigs/rx_impairment.hpp"
#include "pagewire/bench/tcp_baseline.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"
#include "median.hpp"

namespace pagewire::bench {

using namespace pagewire::transport;

namespace {

constexpr std::uint32_t kPage = 4096;

struct DestinationJob {
  const SessionConfig* config;
  const Port* port;
  const pagecodec::PageMap* memory;
  std::string error;
  // While set, the destination's core stops polling: the kernel-TCP pass gets it.
  std::atomic<bool> paused{false};
};

// The destination's core: its own poll loop rather than run_until_finished(), to step
// aside while the TCP baseline runs (the source is idle between rounds then).
int run_destination(void* arg) {
  auto& job = *static_cast<DestinationJob*>(arg);
  auto session = DestinationSession::accept(*job.config, *job.port, *job.memory);
  if (!session) {
    job.error = session.error().message;
    return 1;
  }
  while (!(*session)->finished()) {
    if (job.paused.load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    for (std::uint16_t s = 0; s < (*session)->streams(); ++s) {
      (*session)->poll(s, rte_rdtsc());
      if ((*session)->stream(s).failed()) {
        job.error = (*session)->stream(s).failure();
        return 1;
      }
    }
  }
  (*session)->linger();
  return 0;
}

// The destination end of the bench, on its worker lcore (one thread polls every stream), or
// with stream cores on a control thread whose session runs each stream on an lcore of its own.
class DestinationEnd {
 public:
  Status start(DestinationJob* job, bool stream_cores, unsigned worker) {
    if (stream_cores) {
      control_ = std::thread([job] {
        auto session = DestinationSession::accept(*job->config, *job->port, *job->memory);
        if (!session) {
          job->error = session.error().message;
          return;
        }
        if (auto finished = (*session)->run_until_finished(); !finished) job->error = finished.error().message;
        (*session)->linger();
      });
      return Ok{};
    }
    worker_ = worker;
    if (rte_eal_remote_launch(run_destination, job, worker) != 0) {
      return make_error("cannot launch the destination on lcore " + std::to_string(worker));
    }
    return Ok{};
  }
  void join() {
    if (control_.joinable()) control_.join();
    if (worker_ < RTE_MAX_LCORE) rte_eal_wait_lcore(worker_);
    worker_ = RTE_MAX_LCORE;
  }
  ~DestinationEnd() { join(); }

 private:
  std::thread control_;
  unsigned worker_ = RTE_MAX_LCORE;
};

// Every worker lcore EAL runs, in order.
std::vector<unsigned> worker_lcores() {
  std::vector<unsigned> workers;
  unsigned lcore = 0;
  RTE_LCORE_FOREACH_WORKER(lcore) workers.push_back(lcore);
  return workers;
}

// Copies `pages` pages from `from` to `to` on `threads` threads, each its share: the memcpy
// baseline for as many cores as the streams use.
void copy_pages(std::byte* to, const std::byte* from, std::uint64_t pages, unsigned threads) {
  auto copy_range = [&](std::uint64_t first, std::uint64_t end) {
    for (std::uint64_t p = first; p < end; ++p) std::memcpy(to + p * kPage, from + p * kPage, kPage);
  };
  if (threads <= 1) return copy_range(0, pages);
  std::vector<std::thread> copiers;
  for (unsigned t = 0; t < threads; ++t) copiers.emplace_back(copy_range, pages * t / threads, pages * (t + 1) / threads);
  for (auto& copier : copiers) copier.join();
}

}  // namespace

Result<TransportBenchResult> run_transport_bench(const TransportBenchOptions& options, std::ostream& progress) {
  if (options.region_bytes < kPage || options.region_bytes % kPage != 0) {
    return make_error("--region-mib: expected a whole number of 4 KiB pages");
  }
  const unsigned worker = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
  if (worker >= RTE_MAX_LCORE) {
    return make_error("bench transport needs two lcores (source and destination): run on a machine with 2+ cores");
  }
  const std::vector<unsigned> workers = worker_lcores();
  if (options.stream_cores && workers.size() < 2u * options.streams) {
    return make_error("bench transport with stream cores needs " + std::to_string(2 * options.streams) +
                      " worker lcores (a stream core per stream at each end); EAL runs " +
                      std::to_string(workers.size()));
  }
  static int instance = 0;
  auto link = rigs::RingLink::create("bt" + std::to_string(instance++), options.streams, options.mtu,
                               std::max(StreamTuning::kUncontrolledWindowFrames, 4 * options.window_frames),
                               options.impaired_link ? &options.link : nullptr);
  if (!link) return link.error();
  const Port* source_port = &(*link)->a();
  const Port* destination_port = &(*link)->b();
  const std::uint64_t pages = options.region_bytes / kPage;

  std::vector<std::unique_ptr<rigs::RxImpairment>> impairments;
  if (options.loss > 0) {
    for (std::uint16_t q = 0; q < options.streams; ++q) {
      auto impairment = rigs::RxImpairment::install(destination_port->id(), q, {.drop = options.loss, .seed = 7u + q});
      if (!impairment) return impairment.error();
      impairments.push_back(std::move(impairment).value());
    }
  }

  auto guest = sim::MappedMemory::allocate(options.region_bytes);
  auto destination = sim::MappedMemory::allocate(options.region_bytes);
  auto copy_target = sim::MappedMemory::allocate(options.region_bytes);
  auto tcp_target = sim::MappedMemory::allocate(options.region_bytes);
  if (!guest || !destination || !copy_target || !tcp_target) return make_error("cannot map the benchmark regions");
  std::string memory_note = "regions left where the kernel put them";
  if (options.numa_node >= 0) {
    auto topology = pinning::Topology::from_system();
    Status bound = topology ? pinning::bind_memory(*topology, guest->data(), guest->size(), options.numa_node)
                            : Status(topology.error());
    if (bound) bound = pinning::bind_memory(*topology, destination->data(), destination->size(), options.numa_node);
    memory_note = bound ? "regions bound to NUMA node " + std::to_string(options.numa_node)
                        : "note: " + bound.error().message;
  }
  std::mt19937_64 rng(5);
  for (std::size_t i = 0; i < options.region_bytes; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(guest->data() + i, &v, 8);
  }

  const transport::PreSharedKey key = transport::PreSharedKey::generate();
  auto config_for = [&](const Port& self, const Port& peer, bool source) {
    SessionConfig c;
    if (options.authenticate || options.encrypt) c.security.key = key;
    c.security.encrypt = options.encrypt;
    c.streams = options.streams;
    c.page_size = kPage;
    c.region_pages = pages;
    c.path.local = Endpoint{self.mac(), source ? 0x0a000001u : 0x0a000002u, 47000};
    c.path.peer = Endpoint{peer.mac(), source ? 0x0a000002u : 0x0a000001u, 47000};
    c.udp_checksum = options.udp_checksum ? UdpChecksum::kOn : UdpChecksum::kOff;
    c.emulated_network = options.impaired_link;  // --congestion-control auto decides as on a network
    c.tuning.window_frames = options.window_frames;
    c.tuning.burst = options.burst;
    c.tuning.rate_bytes_per_second = source ? options.pace_bytes_per_second / options.streams : 0;
    c.tuning.congestion_control = options.congestion_control;
    c.tuning.receive_window_frames = 4 * options.window_frames;  // 0: from the window memory
    c.policy.zero = false;
    c.policy.delta = false;
    c.policy.deflate = false;
    c.policy.crc = options.crc;
    c.delta_cache_bytes = 0;
    if (options.stream_cores) {
      const auto first = workers.begin() + (source ? 0 : options.streams);
      c.stream_lcores.assign(first, first + options.streams);
      c.runner.idle_sleep_us = 20;  // an idle core yields to the others sharing its CPU
    }
    return c;
  };
  const SessionConfig source_config = config_for(*source_port, *destination_port, true);
  const SessionConfig destination_config = config_for(*destination_port, *source_port, false);

  const auto guest_pages = pagecodec::PageMap::contiguous(guest->data(), pages, kPage);
  const auto destination_pages = pagecodec::PageMap::contiguous(destination->data(), pages, kPage);
  DestinationJob job{&destination_config, destination_port, &destination_pages, {}, {}};
  DestinationEnd destination_end;
  if (auto started = destination_end.start(&job, options.stream_cores, worker); !started) return started.error();
  auto connected = SourceSession::connect(source_config, *source_port, guest_pages);
  if (!connected) {
    destination_end.join();
    return make_error(connected.error().message + (job.error.empty() ? "" : "; destination: " + job.error));
  }
  SourceSession& source = *connected.value();
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);

  TransportBenchResult result;
  result.source_lcores = source_config.stream_lcores;
  result.destination_lcores = destination_config.stream_lcores;
  result.path_mtu = source.path_mtu();
  result.congestion_controlled = source.congestion_controlled();
  result.memory_note = memory_note;
  // Cross-check the plan against DPDK's own view of the port, now that EAL is up.
  const int dpdk_node = rte_eth_dev_socket_id(source_port->id());
  if (options.numa_node >= 0 && dpdk_node >= 0 && dpdk_node != options.numa_node) {
    result.memory_note += "; warning: DPDK places port " + std::to_string(source_port->id()) + " on node " +
                          std::to_string(dpdk_node) + ", the plan on node " + std::to_string(options.numa_node);
  }
  std::uint32_t generation = 0;
  auto timed_round = [&](bool lossy, double* seconds, SourceSession::RoundPages kind = SourceSession::RoundPages::kMayChange) {
    for (auto& impairment : impairments) impairment->set_enabled(lossy);
    const auto start = std::chrono::steady_clock::now();
    source.begin_round(all, ++generation, kind);
    Status round = source.run_until_idle(120000);
    *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return round;
  };
  const TcpBaselineOptions tcp{.streams = options.streams,
                               .page_size = kPage,
                               .policy = source_config.policy,
                               .sender_cpu = static_cast<int>(rte_lcore_to_cpu_id(static_cast<int>(rte_get_main_lcore()))),
                               .receiver_cpu = static_cast<int>(rte_lcore_to_cpu_id(static_cast<int>(worker)))};
  auto timed_tcp_round = [&]() -> Result<double> {
    job.paused.store(true, std::memory_order_release);
    auto seconds = tcp_round({guest->data(), guest->size()}, {tcp_target->data(), tcp_target->size()}, tcp);
    job.paused.store(false, std::memory_order_release);
    return seconds;
  };
  const double bits = static_cast<double>(options.region_bytes) * 8;
  std::vector<double> rates, copy_rates, ratios, lossy_rates, lossy_ratios, tcp_rates, tcp_ratios;
  std::vector<double> zero_copy_rates, zero_copy_ratios, zero_copy_vs_copy;
  double seconds = 0, lossy_seconds = 0, zero_copy_seconds = 0;
  Status status = timed_round(false, &seconds);  // warm-up: first touch of mbufs and rings
  const unsigned copy_threads = options.stream_cores ? options.streams : 1;
  copy_pages(copy_target->data(), guest->data(), pages, copy_threads);  // and of the copy's target
  for (int repeat = 0; repeat < options.repeats && status; ++repeat) {
    const auto copy_start = std::chrono::steady_clock::now();
    copy_pages(copy_target->data(), guest->data(), pages, copy_threads);
    const double copy_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - copy_start).count();
    // Copying and zero-copy rounds take turns going first: a round right after another
    // finds warmer caches.
    const bool zero_copy_first = options.zero_copy && repeat % 2 == 1;
    if (zero_copy_first) status = timed_round(false, &zero_copy_seconds, SourceSession::RoundPages::kStable);
    if (status) status = timed_round(false, &seconds);
    if (status && options.zero_copy && !zero_copy_first) {
      status = timed_round(false, &zero_copy_seconds, SourceSession::RoundPages::kStable);
    }
    if (status && !impairments.empty()) status = timed_round(true, &lossy_seconds);
    if (!status) break;
    auto tcp_seconds = options.impaired_link || options.stream_cores ? Result<double>(0.0) : timed_tcp_round();
    if (!tcp_seconds) {
      status = tcp_seconds.error();
      break;
    }
    rates.push_back(bits / seconds / 1e9);
    copy_rates.push_back(bits / copy_seconds / 1e9);
    ratios.push_back(copy_seconds / seconds);
    progress << "  repeat " << repeat + 1 << ": " << rates.back() << " Gbit/s (memcpy " << copy_rates.back();
    if (*tcp_seconds > 0) {
      tcp_rates.push_back(bits / *tcp_seconds / 1e9);
      tcp_ratios.push_back(*tcp_seconds / seconds);
      progress << ", kernel TCP " << tcp_rates.back();
    }
    progress << ")";
    if (options.zero_copy) {
      zero_copy_rates.push_back(bits / zero_copy_seconds / 1e9);
      zero_copy_ratios.push_back(copy_seconds / zero_copy_seconds);
      zero_copy_vs_copy.push_back(seconds / zero_copy_seconds);
      progress << ", zero-copy " << zero_copy_rates.back() << " Gbit/s";
    }
    if (!impairments.empty()) {
      lossy_rates.push_back(bits / lossy_seconds / 1e9);
      lossy_ratios.push_back(seconds / lossy_seconds);
      progress << ", with loss " << lossy_rates.back() << " Gbit/s";
    }
    progress << "\n";
  }
  if (status) {
    source.begin_finish();
    status = source.run_until_idle(60000);
  }
  destination_end.join();
  if (!status) return make_error(status.error().message + (job.error.empty() ? "" : "; destination: " + job.error));
  if (!job.error.empty()) return make_error("destination: " + job.error);
  if (std::memcmp(guest->data(), destination->data(), options.region_bytes) != 0 ||
      (!tcp_rates.empty() && std::memcmp(guest->data(), tcp_target->data(), options.region_bytes) != 0)) {
    return make_error("bench self-check failed: a destination region differs from the source");
  }
  const SessionTotals totals = source.totals();
  result.gbps = median(rates);
  result.memcpy_gbps = median(copy_rates);
  result.vs_memcpy = median(ratios);
  if (!tcp_rates.empty()) {
    result.tcp_gbps = median(tcp_rates);
    result.vs_tcp = median(tcp_ratios);
  }
  if (options.impaired_link && options.link.rate_bytes_per_second > 0) {
    result.vs_cap = result.gbps / (options.link.rate_bytes_per_second * 8 / 1e9);
  }
  if (!zero_copy_rates.empty()) {
    result.zero_copy_gbps = median(zero_copy_rates);
    result.zero_copy_vs_memcpy = median(zero_copy_ratios);
    result.zero_copy_vs_copy = median(zero_copy_vs_copy);
    result.pages_by_reference = totals.streams.pages_by_reference;
  }
  if (!lossy_rates.empty()) {
    result.lossy_gbps = median(lossy_rates);
    result.lossy_vs_lossless = median(lossy_ratios);
  }
  result.retransmits_timeout = totals.streams.retransmits_timeout + totals.streams.tail_probes;
  result.retransmits_sack = totals.streams.retransmits_sack;
  result.srtt_us = totals.streams.srtt_us;
  for (const auto& impairment : impairments) result.dropped += impairment->dropped();
  return result;
}

}  // namespace pagewire::bench
