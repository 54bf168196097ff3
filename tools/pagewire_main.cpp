// The pagewire command line: dispatch only; each command lives in cli/.
#include <boost/program_options.hpp>

#include <iostream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "pagewire/version.h"
#include "pagewire_version.hpp"

namespace po = boost::program_options;
using namespace pagewire;

namespace {

constexpr const char* kUsage =
    "usage: pagewire <command> [options]\n"
    "commands:\n"
    "  demo          live-migrate a 1 GiB reference image to a second process over memif\n"
    "  src, dst      the two ends of a migration over any DPDK port\n"
    "  outcome       ask a destination whether a session committed (after src's \"outcome unknown\")\n"
    "  image         create, inspect (stats) and digest reference memory images\n"
    "  bench codec   pagecodec speed and size ratio per encoding, beside memcpy and ISA-L\n"
    "  bench transport  page rounds over a net_ring pair between two lcores, beside memcpy and kernel TCP\n"
    "  bench sweep   a benchmark over a grid of parameters: CSV, JSON, summary\n"
    "  bench plot    an SVG chart of a sweep: one metric against one parameter\n"
    "  bench cost    CPU cost per page of each stage, and the cores 25/40/100 GbE need\n"
    "  bench qemu    QEMU and pagewire migrate the same image, interleaved: total, downtime, ratio\n"
    "  bench track   what tracking a live workload's writes (userfaultfd) costs it and each look\n"
    "  bench postcopy  postcopy's remote faults over a path of a chosen delay and rate\n"
    "  topo          the core, queue and memory placement for a number of streams and a port\n"
    "Run 'pagewire <command> --help' for its options; 'pagewire --version' for the version.\n";

using Command = std::function<int(const std::vector<std::string>& args)>;
const std::map<std::string, Command> kBenches = {
    {"transport", cli::bench_transport}, {"qemu", cli::bench_qemu},   {"link", cli::bench_link},
    {"track", cli::bench_track},         {"cost", cli::bench_cost},   {"plot", cli::bench_plot},
    {"sweep", cli::bench_sweep},         {"codec", [](const auto& args) { return cli::bench_codec(args); }}, {"postcopy", cli::bench_postcopy}};

constexpr const char* kBenchUsage =
    "usage: pagewire bench <codec|transport|link|sweep|plot|cost|qemu|track|postcopy> [options]\n"
    "Run 'pagewire bench <name> --help' for its options.\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "pagewire " << PAGEWIRE_VERSION_STRING << " (API " << PAGEWIRE_API_VERSION << ", built from "
              << PAGEWIRE_VERSION << ")\n";
    return 0;
  }
  if (args[0] == "bench" && (args.size() == 1 || args[1] == "--help" || args[1] == "-h")) {
    std::cout << kBenchUsage;
    return args.size() == 1 ? 2 : 0;
  }
  try {
    const std::string command = args[0];
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (command == "demo") return cli::demo(rest, argv[0]);
    if (command == "src") return cli::source(rest);
    if (command == "dst") return cli::destination(rest);
    if (command == "topo") return cli::topo(rest);
    if (command == "image") return cli::image(rest);
    if (command == "outcome") return cli::outcome(rest);
    if (command == "bench" && args.size() >= 2) {
      if (const auto bench = kBenches.find(args[1]); bench != kBenches.end()) return bench->second({args.begin() + 2, args.end()});
    }
    if (command == "bench") {
      std::cerr << "pagewire bench: unknown benchmark '" << args[1] << "'\n" << kBenchUsage;
      return 2;
    }
    std::cerr << "pagewire: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const po::error& e) {
    // Boost's messages name the option, e.g. "the argument ('x') for option '--repeats' is invalid".
    std::cerr << "pagewire: " << e.what() << "\n";
    return 2;
  }
}
