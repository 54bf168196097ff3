#include "pagewire/bench/memif_bench.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "pagewire/pinning/plan.hpp"
#include "pagewire/pinning/topology.hpp"
#include "pagewire/migration/digest.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/transport/eal.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"
#include "median.hpp"

namespace pagewire::bench {

namespace {

using namespace pagewire::transport;
constexpr std::uint32_t kPage = 4096;

// Where one end runs: its control thread, and its stream cores when it has them.
struct EndCpus {
  unsigned control;
  unsigned streams;
};

// EAL core arguments for an end: one lcore, or the control lcore 0 and a stream lcore per
// stream, alternating between the end's stream CPU and its control CPU (which mostly sleeps).
std::vector<std::string> eal_cores(const MemifBenchOptions& options, EndCpus cpus) {
  if (!options.stream_cores) return {"-l", std::to_string(cpus.control)};
  std::string map = "0@";  // appended piece by piece: GCC 12 misreads "literal" + to_string (-Wrestrict)
  map += std::to_string(cpus.control);
  for (unsigned s = 0; s < options.streams; ++s) {
    map += ',';
    map += std::to_string(s + 1);
    map += '@';
    map += std::to_string(s % 2 == 0 ? cpus.streams : cpus.control);
  }
  return {"--lcores", map, "--main-lcore", "0"};
}

SessionConfig config_for(const MemifBenchOptions& options, const Port& port, bool source) {
  SessionConfig c;
  if (options.stream_cores) {
    for (unsigned s = 1; s <= options.streams; ++s) c.stream_lcores.push_back(s);
    c.runner.idle_sleep_us = 20;  // the two ends share the CPUs: an idle stream core yields
  }
  c.streams = options.streams;
  c.page_size = kPage;
  c.region_pages = options.region_bytes / kPage;
  // memif ports of both processes start with the same default address: fix our own.
  rte_ether_addr source_mac{{0x02, 0x50, 0x57, 0, 0, 1}}, destination_mac{{0x02, 0x50, 0x57, 0, 0, 2}};
  c.path.local = Endpoint{source ? source_mac : destination_mac, source ? 0x0a000001u : 0x0a000002u, 47000};
  c.path.peer = Endpoint{source ? destination_mac : source_mac, source ? 0x0a000002u : 0x0a000001u, 47000};
  rte_eth_dev_default_mac_addr_set(port.id(), &c.path.local.mac);
  c.udp_checksum = options.udp_checksum ? UdpChecksum::kOn : UdpChecksum::kOff;
  c.tuning.window_frames = options.window_frames;
  c.tuning.receive_window_frames = 4 * options.window_frames;
  c.tuning.burst = options.burst;
  c.policy.zero = c.policy.delta = c.policy.deflate = false;
  c.delta_cache_bytes = 0;
  c.hello_timeout_ms = 30000;
  return c;
}

// Which end is memif's server: the client creates the shared memory, and only a client
// runs in memif's zero-copy mode.
std::string memif_role(const MemifBenchOptions& options, bool source) {
  return source == options.receiver_zero_copy ? "server" : "client";
}

Result<std::unique_ptr<Port>> open_memif(const MemifBenchOptions& options, bool source, const std::string& socket,
                                         EndCpus cpus, const std::string& prefix) {
  const std::string role = memif_role(options, source);
  EalOptions eal;
  eal.program = "pagewire-bench-" + role;
  eal.file_prefix = prefix;
  eal.placement = eal_cores(options, cpus);
  // One memif buffer holds a whole frame (transport/src/port.cpp says why).
  const unsigned buffer_bytes = options.mtu + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN;
  eal.vdevs = {"net_memif0,role=" + role + ",socket=" + socket + ",bsize=" + std::to_string(buffer_bytes) +
               (!source && options.receiver_zero_copy ? ",zero-copy=yes" : "")};
  if (auto status = init_eal(eal); !status) return status.error();
  auto port = Port::open({.port_id = 0, .queues = options.streams, .mtu = options.mtu,
                          .held_frames_per_queue = 4 * options.window_frames,
                          .start_wait_ms = 10000,  // a memif client may start before its server
                          .name = role});
  if (!port) return port.error();
  return std::make_unique<Port>(std::move(port).value());
}

// The child: the destination, until the source's FIN; then the digest of what it holds,
// or an error, as one line on `report`.
[[noreturn]] void run_destination(const MemifBenchOptions& options, const std::string& socket, EndCpus cpus,
                                  const std::string& prefix, int report) {
  auto say = [&](const std::string& line) {
    const std::string text = line + "\n";
    if (::write(report, text.data(), text.size()) < 0) _exit(2);
  };
  auto port = open_memif(options, false, socket, cpus, prefix);
  if (!port) {
    say("error " + port.error().message);
    _exit(1);
  }
  auto region = sim::MappedMemory::allocate(options.region_bytes);  // pre-faulted
  if (!region) {
    say("error " + region.error().message);
    _exit(1);
  }
  say("ready");
  const auto memory = pagecodec::PageMap::contiguous(region->data(), options.region_bytes / kPage, kPage);
  auto session = DestinationSession::accept(config_for(options, **port, false), **port, memory);
  if (!session) {
    say("error " + session.error().message);
    _exit(1);
  }
  if (auto finished = (*session)->run_until_finished(); !finished) {
    say("error " + finished.error().message);
    _exit(1);
  }
  (*session)->linger();
  say("digest " + migration::to_hex(migration::digest_of(region->bytes())));
  _exit(0);
}

std::string read_line(FILE* from) {
  char line[512];
  if (std::fgets(line, sizeof line, from) == nullptr) return "";
  std::string text(line);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

Result<MemifBenchResult> run_memif_bench(const MemifBenchOptions& options, std::ostream& progress) {
  if (options.region_bytes < kPage || options.region_bytes % kPage != 0 || options.repeats < 1) {
    return make_error("--region-mib and --repeats: expected a whole number of 4 KiB pages and at least one round");
  }
  auto topology = pinning::Topology::from_system();
  if (!topology) return topology.error();
  auto placement = pinning::plan(*topology, {.streams = 1, .port = "net_memif0", .helper_threads = 0});
  if (!placement || placement->streams.empty()) {
    return make_error("bench transport --link memif needs two cores: " +
                      (placement ? std::string("the plan has no stream core") : placement.error().message));
  }
  // Crosswise: each end's stream core where the other end's control thread sleeps.
  const EndCpus source_cpus{placement->control.pu, placement->streams[0].pu};
  const EndCpus destination_cpus{placement->streams[0].pu, placement->control.pu};
  const std::string tag = std::to_string(getpid());
  const std::string socket = "/tmp/pagewire-bench-" + tag + ".sock";
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return make_error("cannot create a pipe to the destination process");
  const pid_t child = ::fork();
  if (child < 0) return make_error("cannot fork the destination process");
  if (child == 0) {
    ::close(pipe_fds[0]);
    run_destination(options, socket, destination_cpus, "pagewire-bench-dst-" + tag, pipe_fds[1]);
  }
  ::close(pipe_fds[1]);
  FILE* from_destination = ::fdopen(pipe_fds[0], "r");
  auto finish = [&](Result<MemifBenchResult> result) {
    if (!result) ::kill(child, SIGTERM);
    std::fclose(from_destination);
    ::waitpid(child, nullptr, 0);
    ::unlink(socket.c_str());
    return result;
  };
  // Either end may be memif's client, which starts once its server listens: ours opens
  // first, then waits for the destination's.
  auto port = open_memif(options, true, socket, source_cpus, "pagewire-bench-src-" + tag);
  if (!port) return finish(port.error());
  const std::string ready = read_line(from_destination);
  if (ready != "ready") return finish(make_error("destination process: " + (ready.empty() ? "died" : ready)));
  if (auto linked = (*port)->await_link(10000); !linked) return finish(linked.error());

  auto guest = sim::MappedMemory::allocate(options.region_bytes);
  auto copy_target = sim::MappedMemory::allocate(options.region_bytes);
  if (!guest || !copy_target) return finish(make_error("cannot map the benchmark regions"));
  std::mt19937_64 rng(5);
  for (std::size_t i = 0; i < options.region_bytes; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(guest->data() + i, &v, 8);
  }
  const auto memory = pagecodec::PageMap::contiguous(guest->data(), options.region_bytes / kPage, kPage);
  auto connected = SourceSession::connect(config_for(options, **port, true), **port, memory);
  if (!connected) return finish(connected.error());
  SourceSession& source = **connected;
  const std::uint64_t pages = options.region_bytes / kPage;
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);
  const double bits = static_cast<double>(options.region_bytes) * 8;
  std::vector<double> rounds, copies, ratios, zero_copy_rounds, zero_copy_vs_copy;
  std::uint32_t generation = 0;
  auto timed_round = [&](SourceSession::RoundPages kind) -> Result<double> {
    const auto start = std::chrono::steady_clock::now();
    source.begin_round(all, ++generation, kind);
    if (auto status = source.run_until_idle(120000); !status) return status.error();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (int r = 0; r < options.repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    for (std::uint64_t p = 0; p < pages; ++p) std::memcpy(copy_target->data() + p * kPage, guest->data() + p * kPage, kPage);
    const double copy_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // The second of two rounds finds warmer caches: the two kinds take turns going first.
    const bool stable_first = options.zero_copy && r % 2 == 1;
    Result<double> stable_seconds = 0.0;
    if (stable_first) stable_seconds = timed_round(SourceSession::RoundPages::kStable);
    const Result<double> round_seconds = timed_round(SourceSession::RoundPages::kMayChange);
    if (options.zero_copy && !stable_first) stable_seconds = timed_round(SourceSession::RoundPages::kStable);
    if (!round_seconds) return finish(round_seconds.error());
    if (!stable_seconds) return finish(stable_seconds.error());
    rounds.push_back(bits / *round_seconds / 1e9);
    copies.push_back(bits / copy_seconds / 1e9);
    ratios.push_back(copy_seconds / *round_seconds);
    progress << "  repeat " << r + 1 << ": " << rounds.back() << " Gbit/s (memcpy " << copies.back() << ")";
    if (options.zero_copy) {
      zero_copy_rounds.push_back(bits / *stable_seconds / 1e9);
      zero_copy_vs_copy.push_back(*round_seconds / *stable_seconds);
      progress << ", zero-copy " << zero_copy_rounds.back() << " Gbit/s";
    }
    progress << std::endl;
  }
  source.begin_finish();
  if (auto status = source.run_until_idle(120000); !status) return finish(status.error());
  const std::string digest = read_line(from_destination);
  MemifBenchResult result{.gbps = median(rounds),
                          .memcpy_gbps = median(copies),
                          .vs_memcpy = median(ratios),
                          .path_mtu = source.path_mtu(),
                          .verified = digest == "digest " + migration::to_hex(migration::digest_of(guest->bytes())),
                          .pages_by_reference = source.totals().streams.pages_by_reference};
  if (options.zero_copy) {
    result.zero_copy_gbps = median(zero_copy_rounds);
    result.zero_copy_vs_copy = median(zero_copy_vs_copy);
  }
  if (!result.verified) return finish(make_error("the destination does not hold the source's pages: " + digest));
  return finish(result);
}

}  // namespace pagewire::bench
