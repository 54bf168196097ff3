// `pagewire bench sweep`: runs one benchmark over a grid of parameters, each run in a
// process of its own (DPDK's EAL starts once per process, and a fresh process keeps one
// point's memory and caches from leaking into the next), repeats every point, and records
// median and spread of every figure the run reports, with the machine and the versions, so
// that any row can be reproduced.
//
// A run is `pagewire <command...> --<param> <value>...`; it prints JSON lines and the sweep
// reads the one whose "event" is the kind's result event. Every numeric field of it is a
// metric (nested objects and arrays flattened as a.b and a.0).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/bench/svg_chart.hpp"

namespace pagewire::bench {

struct SweepKind {
  std::string name;
  std::vector<std::string> command;        // after the pagewire binary
  std::vector<std::string> leading_params;  // given before `separator`, the rest after it
  std::string separator;                    // empty: every parameter right after the command
  std::vector<std::string> separator_command;  // the command the parameters after it go to
  std::string result_event;
  std::vector<std::string> key_metrics;     // shown in the summary table
};

// migrate: `pagewire demo` (two processes over memif); transport: `pagewire bench transport`.
Result<SweepKind> sweep_kind(const std::string& name);

// One parameter and its values: "streams=1,2,4". A value "on" passes a bare flag
// (--udp-checksum), "off" leaves it out.
struct SweepAxis {
  std::string name;
  std::vector<std::string> values;
};
Result<SweepAxis> parse_axis(const std::string& text);

using SweepPoint = std::vector<std::pair<std::string, std::string>>;  // name, value; axis order
// Every combination, the first axis varying slowest.
std::vector<SweepPoint> expand_grid(const std::vector<SweepAxis>& axes);

std::vector<std::string> run_arguments(const SweepKind& kind, const SweepPoint& point);

// Before any point runs: each point's command line with --help, so that an unknown
// parameter, or a value its option cannot take, fails the sweep at once with the command's
// own message (on stderr), instead of failing every run of every point.
Status check_points(const std::string& executable, const SweepKind& kind, const std::vector<SweepAxis>& axes);

using Metrics = std::map<std::string, double>;
// The numeric fields of the first line of `output` whose "event" is `event`.
Result<Metrics> parse_metrics(const std::string& output, const std::string& event);

struct MetricStats {
  double median = 0, min = 0, max = 0;
};
struct PointResult {
  SweepPoint point;
  std::vector<Metrics> runs;
  std::map<std::string, MetricStats> stats;  // over the runs that succeeded
  int failures = 0;
  std::string last_error;
};
std::map<std::string, MetricStats> summarize(const std::vector<Metrics>& runs);

// What the figures were measured on.
std::map<std::string, std::string> describe_machine();

struct SweepOptions {
  std::string executable;  // the pagewire binary
  SweepKind kind;
  std::vector<SweepAxis> axes;  // varied and fixed (one value) alike
  int repeats = 3;
};

// Runs every point `repeats` times; `progress` gets a line per run with an ETA.
std::vector<PointResult> run_sweep(const SweepOptions& options, std::ostream& progress);

void write_csv(const std::vector<PointResult>& results, const SweepOptions& options,
               const std::map<std::string, std::string>& machine, std::ostream& out);
void write_json(const std::vector<PointResult>& results, const SweepOptions& options,
                const std::map<std::string, std::string>& machine, std::ostream& out);
void print_summary(const std::vector<PointResult>& results, const SweepOptions& options, std::ostream& out);

// A chart of metric `y` (median, with min-max bars) against parameter `x` from a sweep's
// JSON; one line per combination of the other parameters that vary. x is numeric when
// every value parses as a number, else categorical in sweep order.
Result<Chart> chart_from_sweep(const std::string& json_text, const std::string& x, const std::string& y);

}  // namespace pagewire::bench
