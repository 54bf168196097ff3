// The pagewire command line: each command is a thin client of the component libraries.
#pragma once

#include <boost/program_options.hpp>

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/transport/stream_tuning.hpp"

namespace pagewire::cli {

// Parses `args` against `options` (and `positional`, if any) into their bound variables.
// On --help prints "usage: <usage>" and the options and returns the exit code 0; returns
// nothing when the command should run. Bad input throws boost::program_options::error,
// whose message names the option (main prints it).
// A command line cut at its first `--`: the command's own options, and what follows.
struct SplitArguments {
  std::vector<std::string> own;
  std::vector<std::string> after_dashes;
};
SplitArguments split_at_dashes(const std::vector<std::string>& args);

std::optional<int> parse_options(const std::vector<std::string>& args,
                                 const boost::program_options::options_description& options, const std::string& usage,
                                 const boost::program_options::positional_options_description* positional = nullptr);

// EAL on the placement plan's core pair for one stream (source: control core, destination:
// a stream core), for the benchmarks that run both ends in one process; or on `lcores`
// cores (the control core and lcores - 1 stream cores). Prints the plan to `out`; returns
// the NUMA node of the port.
// With `share_cpus`, lcores beyond the machine's CPUs share them (EAL --lcores).
pagewire::Result<int> init_pair_eal(const std::string& what, std::ostream& out, std::uint16_t lcores = 2,
                                    bool share_cpus = false);

// --congestion-control auto|on|off (transport/stream.hpp, StreamTuning).
inline constexpr const char* kCongestionControlHelp =
    "congestion control: auto (on across a router or beyond 1 ms RTT), on, off";
pagewire::Result<transport::StreamTuning::CongestionControl> parse_congestion_control(const std::string& text);

// --cores 2,3,4 -> {2, 3, 4}; empty -> {}. The error names --`option`.
pagewire::Result<std::vector<unsigned>> parse_cpu_list(const std::string& option, const std::string& text);

int bench_codec(const std::vector<std::string>& args, bool demo_defaults = false);
int bench_transport(const std::vector<std::string>& args);
int bench_sweep(const std::vector<std::string>& args);
int bench_plot(const std::vector<std::string>& args);
int bench_cost(const std::vector<std::string>& args);
int bench_qemu(const std::vector<std::string>& args);
int bench_track(const std::vector<std::string>& args);
int bench_postcopy(const std::vector<std::string>& args);
int bench_link(const std::vector<std::string>& args);
int topo(const std::vector<std::string>& args);
int source(const std::vector<std::string>& args);
int destination(const std::vector<std::string>& args);
int demo(const std::vector<std::string>& args, const char* self);
int image(const std::vector<std::string>& args);
int outcome(const std::vector<std::string>& args);

}  // namespace pagewire::cli
