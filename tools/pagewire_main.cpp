// The pagewire command line: a thin client of the component libraries.
//   pagewire demo          the embedded default run (the README's main job)
//   pagewire bench codec   pagecodec speed and ratio per encoding, with baselines
#include <boost/program_options.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include <iomanip>

#include "pagewire/pagecodec/xbzrle.hpp"
#include "pagewire/pinning/plan.hpp"
#include "pagewire/tools/codec_bench.hpp"
#include "pagewire/tools/transport_bench.hpp"
#include "pagewire/transport/eal.hpp"

namespace po = boost::program_options;
using namespace pagewire;

namespace {

constexpr const char* kUsage =
    "usage: pagewire <command> [options]\n"
    "commands:\n"
    "  demo          run the embedded demo (today: the codec benchmark on a small corpus)\n"
    "  bench codec   pagecodec speed and size ratio per encoding, beside memcpy and ISA-L\n"
    "  bench transport  page rounds over a net_ring pair between two lcores, beside memcpy\n"
    "  topo          the core, queue and memory placement for a number of streams and a port\n"
    "Run 'pagewire <command> --help' for its options.\n";

struct CodecBenchCli {
  tools::CodecBenchOptions options;
  std::vector<std::string> corpora;
  std::uint64_t corpus_mib = 64;
  bool json = false;
};

po::options_description codec_bench_options(CodecBenchCli* cli) {
  po::options_description d("bench codec options");
  auto& o = cli->options;
  d.add_options()
      ("help,h", "show this help")
      ("corpus-mib", po::value(&cli->corpus_mib)->default_value(cli->corpus_mib),
       "size of each corpus in MiB (pre-faulted before timing)")
      ("corpus", po::value(&cli->corpora)->multitoken(),
       "corpora to run: zero text binary random mix (default: all)")
      ("page-size", po::value(&o.page_size)->default_value(o.page_size),
       "guest page size: a power of two from 4096 to 65536")
      ("repeats", po::value(&o.repeats)->default_value(o.repeats),
       "timed passes per figure; the median is reported")
      ("deflate-level", po::value(&o.deflate_level)->default_value(o.deflate_level),
       "ISA-L deflate level 0..3")
      ("batch-pages", po::value(&o.deflate_batch_pages)->default_value(o.deflate_batch_pages),
       "pages per DEFLATE record")
      ("delta-percent", po::value(&o.delta_changed_percent)->default_value(o.delta_changed_percent),
       "percent of each page's bytes changed for the DELTA figures")
      ("delta-runs", po::value(&o.delta_runs)->default_value(o.delta_runs),
       "runs those changed bytes come in")
      ("json", po::bool_switch(&cli->json), "print one JSON object instead of a table");
  return d;
}

int run_codec_bench(CodecBenchCli& cli) {
  cli.options.corpus_bytes = cli.corpus_mib << 20;
  if (!cli.corpora.empty()) {
    cli.options.corpora.clear();
    for (const auto& name : cli.corpora) {
      bool found = false;
      for (auto kind : tools::kAllCorpora) {
        if (tools::to_string(kind) == name) {
          cli.options.corpora.push_back(kind);
          found = true;
        }
      }
      if (!found) {
        std::cerr << "pagewire: --corpus " << name
                  << ": expected one of zero, text, binary, random, mix\n";
        return 2;
      }
    }
  }
  std::ostream& progress = cli.json ? std::cerr : std::cout;
  progress << "pagewire bench codec: one core, delta fast path "
           << pagecodec::xbzrle::best_encoder_name() << "\n";
  auto rows = tools::run_codec_bench(cli.options, progress);
  if (!rows) {
    std::cerr << "pagewire: " << rows.error().message << "\n";
    return 1;
  }
  if (cli.json) {
    tools::print_json(*rows, cli.options, std::cout);
  } else {
    tools::print_table(*rows, std::cout);
  }
  return 0;
}

int parse_and_run(const std::vector<std::string>& args, CodecBenchCli& cli, const char* what) {
  const auto description = codec_bench_options(&cli);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(description).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: pagewire " << what << " [options]\n" << description;
    return 0;
  }
  po::notify(vm);
  return run_codec_bench(cli);
}

int bench_transport(const std::vector<std::string>& args) {
  tools::TransportBenchOptions options;
  std::uint64_t region_mib = options.region_bytes >> 20;
  double loss = 0.01;
  po::options_description d("bench transport options");
  d.add_options()
      ("help,h", "show this help")
      ("region-mib", po::value(&region_mib)->default_value(region_mib), "guest region in MiB (4 KiB RAW pages)")
      ("streams", po::value(&options.streams)->default_value(options.streams), "streams (queue pairs)")
      ("mtu", po::value(&options.mtu)->default_value(options.mtu), "port MTU to request")
      ("repeats", po::value(&options.repeats)->default_value(options.repeats), "timed rounds; the median is reported")
      ("loss", po::value(&loss)->default_value(loss), "drop probability for the lossy run (0 skips it)")
      ("window", po::value(&options.window_frames)->default_value(options.window_frames),
       "frames in flight per stream (a power of two)")
      ("crc", po::bool_switch(&options.crc), "carry CRC32C in every record")
      ("no-udp-checksum", po::bool_switch()->notifier([&](bool off) { options.udp_checksum = !off; }),
       "send frames without a UDP checksum (memory links only)");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(d).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: pagewire bench transport [options]\n" << d;
    return 0;
  }
  po::notify(vm);
  if (loss < 0 || loss >= 1) {
    std::cerr << "pagewire: --loss " << loss << ": expected a probability in [0, 1)\n";
    return 2;
  }
  if (options.window_frames == 0 || (options.window_frames & (options.window_frames - 1)) != 0) {
    std::cerr << "pagewire: --window " << options.window_frames << ": expected a power of two\n";
    return 2;
  }
  options.region_bytes = region_mib << 20;
  // One source and one destination core pair: the plan for one stream gives the control
  // core (source) and a stream core (destination).
  auto topology = pinning::Topology::from_system();
  if (!topology) {
    std::cerr << "pagewire: " << topology.error().message << "\n";
    return 1;
  }
  auto placement = pinning::plan(*topology, {.streams = 1, .port = "net_ring0", .helper_threads = 0});
  if (!placement) {
    std::cerr << "pagewire: bench transport needs a core pair: " << placement.error().message << "\n";
    return 1;
  }
  std::cout << placement->to_text();
  options.numa_node = placement->port.numa_node;
  transport::EalOptions eal;
  eal.program = "pagewire";
  eal.file_prefix = "pagewire-bench-" + std::to_string(getpid());
  eal.placement = placement->eal_arguments();
  if (auto status = transport::init_eal(eal); !status) {
    std::cerr << "pagewire: " << status.error().message << "\n";
    return 1;
  }
  options.loss = loss;
  std::cout << "bench transport: " << region_mib << " MiB of 4 KiB RAW pages, " << options.streams
            << " stream(s), window " << options.window_frames << ", UDP checksum "
            << (options.udp_checksum ? "on" : "off") << ", lossy rounds: " << loss << "\n";
  auto result = tools::run_transport_bench(options, std::cout);
  if (!result) {
    std::cerr << "pagewire: " << result.error().message << "\n";
    return 1;
  }
  const auto& r = *result;
  std::cout << std::fixed << std::setprecision(2) << r.memory_note << "\npath MTU " << r.path_mtu << ", srtt "
            << r.srtt_us << " us\n"
            << "lossless: " << r.gbps << " Gbit/s, memcpy " << r.memcpy_gbps << " Gbit/s: " << r.vs_memcpy
            << "x memcpy (median of interleaved ratios)\n";
  if (loss > 0) {
    std::cout << "loss " << loss << ": " << r.lossy_gbps << " Gbit/s: " << r.lossy_vs_lossless
              << " of lossless (median of interleaved ratios); " << r.dropped << " frames dropped, "
              << r.retransmits_sack << " resent on SACK, " << r.retransmits_timeout << " on timeout/probe\n";
  }
  return 0;
}

int topo(const std::vector<std::string>& args) {
  pinning::PlanRequest request;
  std::string topology_file, synthetic;
  bool json = false;
  po::options_description d("topo options");
  d.add_options()
      ("help,h", "show this help")
      ("streams", po::value(&request.streams)->default_value(request.streams), "streams (one core each)")
      ("port", po::value(&request.port)->default_value("net_ring0"),
       "PCI address (0000:81:00.0) or virtual device name (net_memif0)")
      ("helpers", po::value(&request.helper_threads)->default_value(request.helper_threads),
       "non-EAL threads to place (guest model, I/O, reporting)")
      ("memory-mb", po::value(&request.memory_megabytes)->default_value(request.memory_megabytes),
       "hugepage memory for the port's NUMA node")
      ("topology", po::value(&topology_file), "plan for a saved topology (lstopo --of xml) instead of this machine")
      ("synthetic", po::value(&synthetic), "plan for a synthetic topology, e.g. \"pack:2 [numa] core:8 pu:2\"")
      ("json", po::bool_switch(&json), "print the plan as JSON");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(d).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: pagewire topo [options]\n" << d;
    return 0;
  }
  po::notify(vm);
  if (!topology_file.empty() && !synthetic.empty()) {
    std::cerr << "pagewire: --topology and --synthetic: expected at most one of them\n";
    return 2;
  }
  auto topology = !topology_file.empty() ? pinning::Topology::from_xml_file(topology_file)
                  : !synthetic.empty()   ? pinning::Topology::from_synthetic(synthetic)
                                         : pinning::Topology::from_system();
  if (!topology) {
    std::cerr << "pagewire: " << topology.error().message << "\n";
    return 1;
  }
  auto placement = pinning::plan(*topology, request);
  if (!placement) {
    std::cerr << "pagewire: " << placement.error().message << "\n";
    return 1;
  }
  if (json) {
    std::cout << placement->to_json() << "\n";
  } else {
    std::cout << "placement on " << topology->source() << " (" << topology->summary() << ")\n" << placement->to_text();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  try {
    const std::string command = args[0];
    if (command == "demo") {
      // Until the control tool lands, the demo is a short codec benchmark.
      CodecBenchCli cli;
      cli.corpus_mib = 16;
      cli.options.repeats = 3;
      return parse_and_run({args.begin() + 1, args.end()}, cli, "demo");
    }
    if (command == "topo") return topo({args.begin() + 1, args.end()});
    if (command == "bench" && args.size() >= 2 && args[1] == "transport") {
      return bench_transport({args.begin() + 2, args.end()});
    }
    if (command == "bench" && args.size() >= 2 && args[1] == "codec") {
      CodecBenchCli cli;
      return parse_and_run({args.begin() + 2, args.end()}, cli, "bench codec");
    }
    std::cerr << "pagewire: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const po::error& e) {
    // Boost's messages name the option, e.g. "the argument ('x') for option '--repeats' is invalid".
    std::cerr << "pagewire: " << e.what() << "\n";
    return 2;
  }
}
