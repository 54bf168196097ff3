// pagewire bench transport
#include <boost/program_options.hpp>
#include <unistd.h>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_events.hpp"
#include "pagewire/pinning/plan.hpp"
#include "pagewire/bench/memif_bench.hpp"
#include "pagewire/bench/source_cost_bench.hpp"
#include "pagewire/bench/transport_bench.hpp"
#include "pagewire/transport/eal.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

Result<int> init_pair_eal(const std::string& what, std::ostream& out, std::uint16_t lcores, bool share_cpus) {
  // A core pair by default: the plan for one stream gives the control core (the source,
  // main lcore) and a stream core (the destination). More lcores: more stream cores.
  auto topology = pinning::Topology::from_system();
  if (!topology) return topology.error();
  const auto streams = static_cast<std::uint16_t>(std::max(lcores, std::uint16_t{2}) - 1);
  auto placement = pinning::plan(
      *topology, {.streams = streams, .port = "net_ring0", .helper_threads = 0, .share_cpus = share_cpus});
  if (!placement) {
    return make_error(what + " needs " + std::to_string(streams + 1) + " cores: " + placement.error().message);
  }
  out << placement->to_text();
  transport::EalOptions eal;
  eal.program = "pagewire";
  eal.file_prefix = "pagewire-bench-" + std::to_string(getpid());
  eal.placement = placement->eal_arguments();
  if (auto status = transport::init_eal(eal); !status) return status.error();
  return placement->port.numa_node;
}

namespace {

// N streams on stream cores against one, alternating single-repeat passes of each (lossless):
// the median of the pairs' ratios, N-stream Gbit/s over 1-stream Gbit/s.
Result<double> n_streams_vs_one(const bench::TransportBenchOptions& options, std::ostream& out) {
  bench::TransportBenchOptions one = options, many = options;
  one.streams = 1;
  one.repeats = many.repeats = 1;
  one.loss = many.loss = 0;
  std::vector<double> ratios;
  for (int pair = 0; pair < options.repeats; ++pair) {
    std::ostringstream quiet;  // each pass's own progress lines
    auto single = bench::run_transport_bench(one, quiet);
    if (!single) return single.error();
    auto several = bench::run_transport_bench(many, quiet);
    if (!several) return several.error();
    ratios.push_back(several->gbps / single->gbps);
    out << "  pair " << pair + 1 << ": 1 stream " << single->gbps << " Gbit/s, " << options.streams << " streams "
        << several->gbps << " Gbit/s (" << ratios.back() << "x)" << std::endl;
  }
  std::sort(ratios.begin(), ratios.end());
  return ratios[ratios.size() / 2];
}

// --link memif: two processes; the impairments, loss rounds and kernel TCP are ring-only.
int bench_memif(const bench::TransportBenchOptions& ring_options, std::uint64_t region_mib, bool memif_zero_copy,
                bool json) {
  std::ostream& text = text_output(json);
  if (ring_options.impaired_link || ring_options.authenticate) {
    std::cerr << "pagewire: --link memif: the link impairments and --security are for --link ring\n";
    return 2;
  }
  const bench::MemifBenchOptions options{.region_bytes = ring_options.region_bytes,
                                         .streams = ring_options.streams,
                                         .repeats = ring_options.repeats,
                                         .window_frames = ring_options.window_frames,
                                         .burst = ring_options.burst,
                                         .mtu = ring_options.mtu,
                                         .udp_checksum = ring_options.udp_checksum,
                                         .zero_copy = ring_options.zero_copy,
                                         .stream_cores = ring_options.stream_cores,
                                         .receiver_zero_copy = memif_zero_copy};
  text << "bench transport: " << region_mib << " MiB of 4 KiB RAW pages over memif between two processes, "
            << options.streams << " stream(s), window " << options.window_frames
            << (options.stream_cores ? ", each stream on an lcore of its own at both ends" : "") << std::endl;
  auto result = bench::run_memif_bench(options, text);
  if (!result) {
    std::cerr << "pagewire: " << result.error().message << "\n";
    return 1;
  }
  const auto& r = *result;
  if (json) {
    emit_event("result", {{"link", "memif"}, {"region_mib", region_mib},
                                {"streams", options.streams}, {"stream_cores", options.stream_cores},
                                {"memif_zero_copy", options.receiver_zero_copy},
                                {"path_mtu", r.path_mtu},
                                {"window", options.window_frames}, {"udp_checksum", options.udp_checksum},
                                {"gbps", r.gbps}, {"memcpy_gbps", r.memcpy_gbps}, {"vs_memcpy", r.vs_memcpy},
                                {"verified", r.verified}, {"zero_copy_gbps", r.zero_copy_gbps},
                                {"zero_copy_vs_copy", r.zero_copy_vs_copy}, {"pages_by_reference", r.pages_by_reference}});
    return 0;
  }
  text << std::fixed << std::setprecision(2) << "path MTU " << r.path_mtu << "; " << r.gbps
            << " Gbit/s, memcpy " << r.memcpy_gbps << " Gbit/s: " << r.vs_memcpy
            << "x memcpy (medians of interleaved ratios); destination verified\n";
  if (options.zero_copy) {
    text << "zero-copy: " << r.zero_copy_gbps << " Gbit/s, " << r.zero_copy_vs_copy
              << "x the copying rounds (medians of interleaved ratios); " << r.pages_by_reference
              << " pages sent by reference\n";
  }
  return 0;
}

// --link null: the source core alone, copying beside by reference.
int bench_source_cost(const bench::TransportBenchOptions& ring_options, std::uint64_t region_mib, bool json) {
  std::ostream& text = text_output(json);
  if (ring_options.impaired_link || ring_options.authenticate) {
    std::cerr << "pagewire: --link null: no link impairments and no --security\n";
    return 2;
  }
  auto numa_node = init_pair_eal("bench transport --link null --streams " + std::to_string(ring_options.streams),
                                 text, ring_options.streams);
  if (!numa_node) {
    std::cerr << "pagewire: " << numa_node.error().message << "\n";
    return 1;
  }
  const bench::SourceCostOptions options{.region_bytes = ring_options.region_bytes,
                                         .mtu = ring_options.mtu,
                                         .repeats = ring_options.repeats,
                                         .burst = ring_options.burst,
                                         .crc = ring_options.crc,
                                         .cores = ring_options.streams};
  text << "bench transport: "
            << (options.cores == 1 ? std::string("one source core")
                                   : "source cores, 1 beside " + std::to_string(options.cores) + " (a stream each)")
            << ", " << region_mib << " MiB of 4 KiB RAW pages into a sink "
            << "(frames freed on the source core, as by a NIC's TX completion; nothing acknowledged)" << std::endl;
  auto result = bench::run_source_cost_bench(options, text);
  if (!result) {
    std::cerr << "pagewire: " << result.error().message << "\n";
    return 1;
  }
  const auto& r = *result;
  if (json) {
    emit_event("result", {{"link", "null"}, {"region_mib", region_mib}, {"mtu", r.mtu},
                                {"crc", options.crc}, {"copy_gbps", r.copy_gbps}, {"reference_gbps", r.reference_gbps},
                                {"memcpy_gbps", r.memcpy_gbps}, {"copy_vs_memcpy", r.copy_vs_memcpy},
                                {"reference_vs_copy", r.reference_vs_copy}, {"copy_ns_per_page", r.copy_ns_per_page},
                                {"reference_ns_per_page", r.reference_ns_per_page},
                                {"pages_by_reference", r.pages_by_reference},
                                {"cores", options.cores},
                                {"all_cores", {{"copy_gbps", r.scaling.copy_gbps},
                                               {"reference_gbps", r.scaling.reference_gbps},
                                               {"memcpy_gbps", r.scaling.memcpy_gbps},
                                               {"copy_speedup", r.scaling.copy_speedup},
                                               {"reference_speedup", r.scaling.reference_speedup},
                                               {"memcpy_speedup", r.scaling.memcpy_speedup}}}});
    return 0;
  }
  text << std::fixed << std::setprecision(2) << "MTU " << r.mtu << ": copying " << r.copy_gbps << " Gbit/s ("
            << r.copy_ns_per_page << " ns/page, " << r.copy_vs_memcpy << "x memcpy " << r.memcpy_gbps
            << " Gbit/s); by reference " << r.reference_gbps << " Gbit/s (" << r.reference_ns_per_page
            << " ns/page): " << r.reference_vs_copy << "x the copying rounds (medians of interleaved ratios)\n";
  if (r.scaling.cores > 1) {
    const auto& s = r.scaling;
    text << "on " << s.cores << " cores at once: copying " << s.copy_gbps << " Gbit/s (" << s.copy_speedup
              << "x one core), by reference " << s.reference_gbps << " Gbit/s (" << s.reference_speedup
              << "x), memcpy " << s.memcpy_gbps << " Gbit/s (" << s.memcpy_speedup << "x); " << s.cores
              << "x would be linear\n";
  }
  return 0;
}

}  // namespace

int bench_transport(const std::vector<std::string>& args) {
  bench::TransportBenchOptions options;
  std::uint64_t region_mib = options.region_bytes >> 20;
  double loss = 0.01;
  bool json = false;
  bool memif_zero_copy = false;
  double delay_ms = 0, jitter_ms = 0, rate_gbps = 0, queue_ms = 20, pace_gbps = 0;
  std::string security = "none";
  std::string congestion_control = "auto";
  std::string link = "ring";
  po::options_description d("bench transport options");
  d.add_options()
      ("help,h", "show this help")
      ("region-mib", po::value(&region_mib)->default_value(region_mib), "guest region in MiB (4 KiB RAW pages)")
      ("link", po::value(&link)->default_value(link),
       "ring: both ends in this process on a net_ring pair (with kernel TCP and the impairments); "
       "memif: the destination in a second process, over memif; "
       "null: the source core alone, its frames freed on that core as by a NIC, copying beside by reference")
      ("streams", po::value(&options.streams)->default_value(options.streams),
       "streams (queue pairs); --link null: source cores, each with a stream, timed beside one")
      ("mtu", po::value(&options.mtu)->default_value(options.mtu), "port MTU to request")
      ("repeats", po::value(&options.repeats)->default_value(options.repeats), "timed rounds; the median is reported")
      ("loss", po::value(&loss)->default_value(loss), "drop probability for the lossy run (0 skips it)")
      ("window", po::value(&options.window_frames)->default_value(options.window_frames),
       "frames in flight per stream (a power of two); 0: the path decides (1024 without congestion control, else "
       "about twice the measured bandwidth x delay)")
      ("burst", po::value(&options.burst)->default_value(options.burst), "frames per TX/RX burst, 1..64")
      ("pace-gbps", po::value(&pace_gbps)->default_value(0), "the source's own rate limit (token bucket); 0: none")
      ("delay-ms", po::value(&delay_ms)->default_value(0), "link: one-way delay (75 = 150 ms RTT)")
      ("jitter-ms", po::value(&jitter_ms)->default_value(0), "link: +- this much on each frame's delay")
      ("rate-gbps", po::value(&rate_gbps)->default_value(0), "link: bottleneck rate per direction; 0: none")
      ("queue-ms", po::value(&queue_ms)->default_value(queue_ms), "link: bottleneck queue, in ms at its rate")
      ("link-drop", po::value(&options.link.drop)->default_value(0), "link: random loss per frame")
      ("burst-enter", po::value(&options.link.burst_enter)->default_value(0),
       "link: bursty loss, chance per frame that a burst starts")
      ("burst-exit", po::value(&options.link.burst_exit)->default_value(options.link.burst_exit),
       "link: chance per frame that a burst ends")
      ("reorder", po::value(&options.link.reorder)->default_value(0), "link: share of frames held back")
      ("duplicate", po::value(&options.link.duplicate)->default_value(0), "link: share of frames sent twice")
      ("mtu-clamp", po::value(&options.link.mtu_clamp)->default_value(0), "link: drop IP packets above this size")
      ("crc", po::bool_switch(&options.crc), "carry CRC32C in every record")
      ("congestion-control", po::value(&congestion_control)->default_value(congestion_control),
       kCongestionControlHelp)
      ("security", po::value(&security)->default_value(security),
       "none, authenticated or encrypted (AES-256-GCM on every frame, a key made for the run)")
      ("zero-copy", po::bool_switch(&options.zero_copy),
       "also time rounds of pages declared stable (a paused guest), sent from guest memory by reference, "
       "interleaved with the copying rounds")
      ("stream-cores", po::bool_switch(&options.stream_cores),
       "--link ring: each stream polled by an lcore of its own at both ends, as src/dst run (2 x --streams "
       "lcores, shared where the machine has fewer CPUs); memcpy on as many threads; no kernel-TCP pass; with "
       "--streams N > 1, N streams against one first, alternating (N ÷ 1 ratio)")
      ("memif-zero-copy", po::bool_switch(&memif_zero_copy),
       "--link memif: the destination is memif's zero-copy client (the source the server), so its PMD "
       "receives into buffers the source's PMD writes: one copy fewer at the receiving end")
      ("udp-checksum", po::bool_switch(&options.udp_checksum),
       "sum every frame in software (UDP checksum); by default the memory links these benchmarks use carry none")
      ("no-udp-checksum", po::bool_switch(), "no UDP checksum: the default, kept for older command lines")
      ("json", po::bool_switch(&json), "end with the result as one JSON object (event \"result\")");
  if (auto done = parse_options(args, d, "pagewire bench transport [options]")) return *done;
  if (security != "none" && security != "authenticated" && security != "encrypted") {
    std::cerr << "pagewire: --security " << security << ": expected none, authenticated or encrypted\n";
    return 2;
  }
  auto control = parse_congestion_control(congestion_control);
  if (!control) {
    std::cerr << "pagewire: " << control.error().message << "\n";
    return 2;
  }
  options.congestion_control = *control;
  options.authenticate = security != "none";
  options.encrypt = security == "encrypted";
  if (loss < 0 || loss >= 1) {
    std::cerr << "pagewire: --loss " << loss << ": expected a probability in [0, 1)\n";
    return 2;
  }
  if ((options.window_frames & (options.window_frames - 1)) != 0) {
    std::cerr << "pagewire: --window " << options.window_frames << ": expected 0 (the path decides) or a power of two\n";
    return 2;
  }
  if (options.burst < 1 || options.burst > 64) {
    std::cerr << "pagewire: --burst " << options.burst << ": expected 1..64\n";
    return 2;
  }
  if (delay_ms < 0 || jitter_ms < 0 || rate_gbps < 0 || queue_ms <= 0 || pace_gbps < 0) {
    std::cerr << "pagewire: --delay-ms, --jitter-ms, --rate-gbps, --pace-gbps: expected >= 0; --queue-ms: > 0\n";
    return 2;
  }
  options.link.delay_us = static_cast<std::uint32_t>(delay_ms * 1000);
  options.link.jitter_us = static_cast<std::uint32_t>(jitter_ms * 1000);
  options.link.rate_bytes_per_second = rate_gbps * 1e9 / 8;
  options.link.queue_limit_bytes = static_cast<std::uint64_t>(options.link.rate_bytes_per_second * queue_ms / 1000);
  options.pace_bytes_per_second = pace_gbps * 1e9 / 8;
  options.impaired_link = options.link.delays() || options.link.drop > 0 || options.link.burst_enter > 0 ||
                          options.link.reorder > 0 || options.link.duplicate > 0 || options.link.mtu_clamp != 0;
  options.region_bytes = region_mib << 20;
  if (memif_zero_copy && link != "memif") {
    std::cerr << "pagewire: --memif-zero-copy: only with --link memif\n";
    return 2;
  }
  std::ostream& text = text_output(json);
  if (link == "memif") return bench_memif(options, region_mib, memif_zero_copy, json);
  if (link == "null") return bench_source_cost(options, region_mib, json);
  if (link != "ring") {
    std::cerr << "pagewire: --link " << link << ": expected ring, memif or null\n";
    return 2;
  }
  // Stream cores: the control thread on the main lcore, a stream core per stream at each end.
  const auto lcores = static_cast<std::uint16_t>(options.stream_cores ? 1 + 2 * options.streams : 2);
  auto numa_node = init_pair_eal("bench transport", text, lcores, options.stream_cores);
  if (!numa_node) {
    std::cerr << "pagewire: " << numa_node.error().message << "\n";
    return 1;
  }
  options.numa_node = *numa_node;
  options.loss = loss;
  text << "bench transport: " << region_mib << " MiB of 4 KiB RAW pages, " << options.streams
            << " stream(s), window " << options.window_frames << ", UDP checksum "
            << (options.udp_checksum ? "on" : "off") << ", security " << security << ", lossy rounds: " << loss << "\n";
  double n_vs_one = 0;
  if (options.stream_cores && options.streams > 1) {
    text << options.streams << " stream cores per end against one, alternating:" << std::endl;
    auto ratio = n_streams_vs_one(options, text);
    if (!ratio) {
      std::cerr << "pagewire: " << ratio.error().message << "\n";
      return 1;
    }
    n_vs_one = *ratio;
  }
  auto result = bench::run_transport_bench(options, text);
  if (!result) {
    std::cerr << "pagewire: " << result.error().message << "\n";
    return 1;
  }
  const auto& r = *result;
  if (json) {
    emit_event("result", {{"region_mib", region_mib}, {"streams", options.streams},
                                {"n_streams_vs_one", n_vs_one},
                                {"mtu", options.mtu}, {"path_mtu", r.path_mtu}, {"window", options.window_frames}, {"burst", options.burst},
                                {"udp_checksum", options.udp_checksum}, {"crc", options.crc}, {"security", security},
                                {"congestion_control", r.congestion_controlled},
                                {"loss", loss},
                                {"gbps", r.gbps}, {"memcpy_gbps", r.memcpy_gbps}, {"vs_memcpy", r.vs_memcpy},
                                {"tcp_gbps", r.tcp_gbps}, {"vs_tcp", r.vs_tcp}, {"vs_cap", r.vs_cap},
                                {"delay_ms", delay_ms}, {"jitter_ms", jitter_ms}, {"rate_gbps", rate_gbps}, {"lossy_gbps", r.lossy_gbps},
                                {"lossy_vs_lossless", r.lossy_vs_lossless}, {"srtt_us", r.srtt_us},
                                {"dropped", r.dropped}, {"retransmits_sack", r.retransmits_sack},
                                {"retransmits_timeout", r.retransmits_timeout},
                                {"zero_copy_gbps", r.zero_copy_gbps}, {"zero_copy_vs_memcpy", r.zero_copy_vs_memcpy},
                                {"zero_copy_vs_copy", r.zero_copy_vs_copy}, {"pages_by_reference", r.pages_by_reference},
                                {"stream_cores", options.stream_cores},
                                {"gbps_per_stream_core", options.stream_cores ? r.gbps / options.streams : 0.0},
                                {"source_lcores", r.source_lcores}, {"destination_lcores", r.destination_lcores}});
    return 0;
  }
  if (options.stream_cores) {
    text << "stream cores: source lcores";
    for (unsigned lcore : r.source_lcores) text << " " << lcore;
    text << ", destination lcores";
    for (unsigned lcore : r.destination_lcores) text << " " << lcore;
    text << "; " << std::fixed << std::setprecision(2) << r.gbps / options.streams
              << " Gbit/s per stream core, memcpy on " << options.streams << " thread(s)";
    if (n_vs_one > 0) text << "; " << options.streams << " streams ÷ 1: " << n_vs_one << "x (median of pairs)";
    text << "\n";
  }
  text << std::fixed << std::setprecision(2) << r.memory_note << "\npath MTU " << r.path_mtu << ", srtt "
            << r.srtt_us << " us, congestion control " << (r.congestion_controlled ? "on" : "off") << "\n"
            << "lossless: " << r.gbps << " Gbit/s, memcpy " << r.memcpy_gbps << " Gbit/s: " << r.vs_memcpy
            << "x memcpy (medians of interleaved ratios)";
  if (r.tcp_gbps > 0) text << "; kernel TCP " << r.tcp_gbps << " Gbit/s: " << r.vs_tcp << "x kernel TCP";
  if (r.vs_cap > 0) text << "; " << r.vs_cap << " of the link's " << rate_gbps << " Gbit/s cap";
  text << "\n";
  if (options.zero_copy) {
    text << "zero-copy: " << r.zero_copy_gbps << " Gbit/s: " << r.zero_copy_vs_memcpy << "x memcpy, "
              << r.zero_copy_vs_copy << "x the copying rounds (medians of interleaved ratios); " << r.pages_by_reference
              << " pages sent by reference\n";
  }
  if (loss > 0) {
    text << "loss " << loss << ": " << r.lossy_gbps << " Gbit/s: " << r.lossy_vs_lossless
              << " of lossless (median of interleaved ratios); " << r.dropped << " frames dropped, "
              << r.retransmits_sack << " resent on SACK, " << r.retransmits_timeout << " on timeout/probe\n";
  }
  return 0;
}

}  // namespace pagewire::cli
