#include "pagewire/bench/sweep.hpp"

#include <isa-l.h>
#include <rte_version.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "pagewire/bench/child_process.hpp"
#include "pagewire_version.hpp"

namespace pagewire::bench {

namespace {

using Clock = std::chrono::steady_clock;

// Runs `executable args...` and returns what it printed on stdout; its stderr goes to ours.
Result<std::string> run_child(const std::string& executable, const std::vector<std::string>& args) {
  auto child = ChildProcess::start(executable, args);
  if (!child) return child.error();
  std::string text = child->read_all();
  if (auto status = child->wait(); !status) {
    return make_error("`pagewire " + (args.empty() ? std::string() : args[0]) + " ...`: " + status.error().message);
  }
  return text;
}

void flatten(const nlohmann::json& value, const std::string& name, Metrics& out) {
  if (value.is_number()) {
    out[name] = value.get<double>();
  } else if (value.is_boolean()) {
    out[name] = value.get<bool>() ? 1 : 0;
  } else if (value.is_object()) {
    for (const auto& [key, item] : value.items()) flatten(item, name.empty() ? key : name + "." + key, out);
  } else if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) flatten(value[i], name + "." + std::to_string(i), out);
  }
}

double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string read_first_line_with(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long>(std::lround(seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  if (s >= 60) out << (s % 3600) / 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

std::string text_of(const nlohmann::json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

std::string point_text(const SweepPoint& point) {
  std::string text;
  for (const auto& [name, value] : point) text += (text.empty() ? "" : " ") + name + "=" + value;
  return text;
}

}  // namespace

Result<SweepKind> sweep_kind(const std::string& name) {
  if (name == "migrate") {
    return SweepKind{.name = name,
                     .command = {"demo", "--json"},
                     .leading_params = {"size-mib", "streams", "page-size", "dirty-rate"},
                     .separator = "--",
                     .separator_command = {"src"},
                     .result_event = "migrated",
                     .key_metrics = {"total_seconds", "downtime_ms", "throughput_gbps", "compression_ratio", "rounds"}};
  }
  if (name == "transport") {
    return SweepKind{.name = name,
                     .command = {"bench", "transport", "--json"},
                     .leading_params = {},
                     .separator = {},
                     .separator_command = {},
                     .result_event = "result",
                     .key_metrics = {"gbps", "vs_memcpy", "tcp_gbps", "vs_tcp", "lossy_vs_lossless"}};
  }
  if (name == "codec") {
    return SweepKind{.name = name,
                     .command = {"bench", "codec", "--json"},
                     .leading_params = {},
                     .separator = {},
                     .separator_command = {},
                     .result_event = "result",
                     .key_metrics = {"metrics.mix/encode default policy.gbps",
                                     "metrics.mix/encode default policy.size_ratio",
                                     "metrics.mix/decode zero+deflate.gbps"}};
  }
  return make_error("--kind " + name + ": expected migrate, transport or codec");
}

Result<SweepAxis> parse_axis(const std::string& text) {
  const auto equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size()) {
    return make_error("'" + text + "': expected name=value[,value...], e.g. streams=1,2");
  }
  SweepAxis axis{.name = text.substr(0, equals), .values = {}};
  std::stringstream values(text.substr(equals + 1));
  for (std::string value; std::getline(values, value, ',');) {
    if (value.empty()) return make_error("'" + text + "': an empty value");
    axis.values.push_back(value);
  }
  return axis;
}

std::vector<SweepPoint> expand_grid(const std::vector<SweepAxis>& axes) {
  std::vector<SweepPoint> points{{}};
  for (const auto& axis : axes) {
    std::vector<SweepPoint> next;
    for (const auto& point : points) {
      for (const auto& value : axis.values) {
        SweepPoint extended = point;
        extended.emplace_back(axis.name, value);
        next.push_back(std::move(extended));
      }
    }
    points = std::move(next);
  }
  return points;
}

std::vector<std::string> run_arguments(const SweepKind& kind, const SweepPoint& point) {
  std::vector<std::string> leading = kind.command, trailing;
  for (const auto& [name, value] : point) {
    const bool lead = kind.separator.empty() ||
                      std::find(kind.leading_params.begin(), kind.leading_params.end(), name) != kind.leading_params.end();
    auto& args = lead ? leading : trailing;
    if (value == "off") continue;
    args.push_back("--" + name);
    if (value != "on") args.push_back(value);
  }
  if (!trailing.empty()) {
    leading.push_back(kind.separator);
    leading.insert(leading.end(), trailing.begin(), trailing.end());
  }
  return leading;
}

Status check_points(const std::string& executable, const SweepKind& kind, const std::vector<SweepAxis>& axes) {
  auto accepts = [&](std::vector<std::string> args, const SweepPoint& point) -> Status {
    args.push_back("--help");
    auto child = ChildProcess::start(executable, args);
    if (!child) return child.error();
    (void)child->read_all();  // the help text
    if (child->wait().ok()) return Ok{};
    std::string named;
    for (const auto& [name, value] : point) named += " --param " + name + "=" + value;
    return make_error("`pagewire " + args[0] + "` does not take" + named + " (its message above)");
  };
  for (const SweepPoint& point : expand_grid(axes)) {
    std::vector<std::string> args = run_arguments(kind, point);
    const auto separator = std::find(args.begin(), args.end(), kind.separator);
    if (kind.separator.empty() || separator == args.end()) {
      if (Status ok = accepts(args, point); !ok) return ok;
      continue;
    }
    std::vector<std::string> after = kind.separator_command;
    after.insert(after.end(), separator + 1, args.end());
    args.erase(separator, args.end());
    if (Status ok = accepts(args, point); !ok) return ok;
    if (Status ok = accepts(after, point); !ok) return ok;
  }
  return Ok{};
}

Result<Metrics> parse_metrics(const std::string& output, const std::string& event) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line.front() != '{') continue;
    const auto json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || !json.is_object() || !json.contains("event") || json["event"] != event) continue;
    Metrics metrics;
    flatten(json, "", metrics);
    return metrics;
  }
  return make_error("the run printed no '" + event + "' event");
}

std::map<std::string, MetricStats> summarize(const std::vector<Metrics>& runs) {
  std::map<std::string, std::vector<double>> values;
  for (const auto& run : runs) {
    for (const auto& [name, value] : run) values[name].push_back(value);
  }
  std::map<std::string, MetricStats> stats;
  for (auto& [name, list] : values) {
    stats[name] = {.median = median_of(list),
                   .min = *std::min_element(list.begin(), list.end()),
                   .max = *std::max_element(list.begin(), list.end())};
  }
  return stats;
}

std::map<std::string, std::string> describe_machine() {
  std::map<std::string, std::string> machine;
  machine["cpu_model"] = read_first_line_with("/proc/cpuinfo", "model name");
  machine["logical_cpus"] = std::to_string(std::thread::hardware_concurrency());
  int nodes = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/devices/system/node", error)) {
    const std::string name = entry.path().filename();
    nodes += name.rfind("node", 0) == 0 && name.size() > 4 && std::isdigit(static_cast<unsigned char>(name[4]));
  }
  machine["numa_nodes"] = std::to_string(std::max(nodes, 1));
  utsname host{};
  if (uname(&host) == 0) machine["kernel"] = std::string(host.sysname) + " " + host.release;
  machine["pagewire_version"] = PAGEWIRE_VERSION;
  machine["dpdk_version"] = rte_version();
  machine["isal_version"] = std::to_string(ISAL_MAJOR_VERSION) + "." + std::to_string(ISAL_MINOR_VERSION) + "." +
                            std::to_string(ISAL_PATCH_VERSION);
  return machine;
}

std::vector<PointResult> run_sweep(const SweepOptions& options, std::ostream& progress) {
  const auto points = expand_grid(options.axes);
  const int total_runs = static_cast<int>(points.size()) * options.repeats;
  std::vector<PointResult> results;
  const auto start = Clock::now();
  int done = 0;
  for (std::size_t p = 0; p < points.size(); ++p) {
    PointResult result{.point = points[p], .runs = {}, .stats = {}, .failures = 0, .last_error = {}};
    const auto args = run_arguments(options.kind, points[p]);
    for (int r = 0; r < options.repeats; ++r) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      progress << "[" << p + 1 << "/" << points.size() << "] " << point_text(points[p]) << "  run " << r + 1 << "/"
               << options.repeats << "  elapsed " << duration_text(elapsed);
      if (done > 0) progress << ", ETA " << duration_text(elapsed / done * (total_runs - done));
      progress << std::endl;
      auto output = run_child(options.executable, args);
      auto metrics = output ? parse_metrics(*output, options.kind.result_event) : Result<Metrics>(output.error());
      if (metrics) {
        result.runs.push_back(std::move(metrics).value());
      } else {
        ++result.failures;
        result.last_error = metrics.error().message;
        progress << "  failed: " << result.last_error << std::endl;
      }
      ++done;
    }
    result.stats = summarize(result.runs);
    results.push_back(std::move(result));
  }
  return results;
}

namespace {

std::vector<std::string> metric_names(const std::vector<PointResult>& results) {
  std::vector<std::string> names;
  for (const auto& result : results) {
    for (const auto& [name, stats] : result.stats) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

void write_csv(const std::vector<PointResult>& results, const SweepOptions& options,
               const std::map<std::string, std::string>& machine, std::ostream& out) {
  const auto metrics = metric_names(results);
  out << "kind";
  for (const auto& axis : options.axes) out << "," << csv_field(axis.name);
  out << ",runs,failures";
  for (const auto& name : metrics) out << "," << name << "," << name << "_min," << name << "_max";
  for (const auto& [key, value] : machine) out << "," << key;
  out << "\n";
  out << std::setprecision(9);
  for (const auto& result : results) {
    out << options.kind.name;
    for (const auto& [name, value] : result.point) out << "," << csv_field(value);
    out << "," << result.runs.size() << "," << result.failures;
    for (const auto& name : metrics) {
      const auto found = result.stats.find(name);
      if (found == result.stats.end()) {
        out << ",,,";
      } else {
        out << "," << found->second.median << "," << found->second.min << "," << found->second.max;
      }
    }
    for (const auto& [key, value] : machine) out << "," << csv_field(value);
    out << "\n";
  }
}

void write_json(const std::vector<PointResult>& results, const SweepOptions& options,
                const std::map<std::string, std::string>& machine, std::ostream& out) {
  nlohmann::json document;
  document["kind"] = options.kind.name;
  document["machine"] = machine;
  document["repeats"] = options.repeats;
  document["points"] = nlohmann::json::array();
  for (const auto& result : results) {
    nlohmann::json point;
    for (const auto& [name, value] : result.point) point["params"][name] = value;
    point["runs"] = result.runs;
    point["failures"] = result.failures;
    if (!result.last_error.empty()) point["last_error"] = result.last_error;
    for (const auto& [name, stats] : result.stats) {
      point["median"][name] = stats.median;
      point["min"][name] = stats.min;
      point["max"][name] = stats.max;
    }
    document["points"].push_back(std::move(point));
  }
  out << document.dump(1) << "\n";
}

void print_summary(const std::vector<PointResult>& results, const SweepOptions& options, std::ostream& out) {
  std::vector<std::string> varied;
  for (const auto& axis : options.axes) {
    if (axis.values.size() > 1) varied.push_back(axis.name);
  }
  std::vector<std::vector<std::string>> table;
  std::vector<std::string> header = varied;
  for (const auto& metric : options.kind.key_metrics) header.push_back(metric);
  header.push_back("runs");
  table.push_back(header);
  for (const auto& result : results) {
    std::vector<std::string> row;
    for (const auto& [name, value] : result.point) {
      if (std::find(varied.begin(), varied.end(), name) != varied.end()) row.push_back(value);
    }
    for (const auto& metric : options.kind.key_metrics) {
      const auto found = result.stats.find(metric);
      std::ostringstream cell;
      if (found != result.stats.end()) {
        const auto& s = found->second;
        cell << std::setprecision(3) << s.median;
        if (s.max > s.min) cell << " (" << s.min << "-" << s.max << ")";
      } else {
        cell << "-";
      }
      row.push_back(cell.str());
    }
    row.push_back(std::to_string(result.runs.size()) + (result.failures ? " (" + std::to_string(result.failures) +
                                                                              " failed)" : ""));
    table.push_back(std::move(row));
  }
  std::vector<std::size_t> widths(header.size(), 0);
  for (const auto& row : table) {
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  out << "median (min-max) of " << options.repeats << " runs per point\n";
  for (const auto& row : table) {
    for (std::size_t c = 0; c < row.size(); ++c) out << std::left << std::setw(static_cast<int>(widths[c] + 2)) << row[c];
    out << "\n";
  }
}

Result<Chart> chart_from_sweep(const std::string& json_text, const std::string& x, const std::string& y) {
  const auto document = nlohmann::json::parse(json_text, nullptr, false);
  if (document.is_discarded() || !document.contains("points") || !document["points"].is_array()) {
    return make_error("--input: expected the JSON a `pagewire bench sweep` wrote");
  }
  const auto& points = document["points"];
  // Which parameters vary, besides x: they name the lines.
  std::map<std::string, std::vector<std::string>> values;
  for (const auto& point : points) {
    if (!point.is_object() || !point.contains("params") || !point["params"].is_object()) continue;
    for (const auto& [name, value] : point["params"].items()) {
      auto& seen = values[name];
      const std::string text = text_of(value);
      if (std::find(seen.begin(), seen.end(), text) == seen.end()) seen.push_back(text);
    }
  }
  if (!values.contains(x)) return make_error("--x " + x + ": the sweep has no such parameter");
  bool numeric = true;
  for (const auto& text : values[x]) {
    char* end = nullptr;
    std::strtod(text.c_str(), &end);
    numeric = numeric && end != text.c_str() && *end == '\0';
  }
  Chart chart;
  chart.title = y + " vs " + x + " (" + (document.contains("kind") ? text_of(document["kind"]) : "sweep") + ")";
  chart.x_label = x;
  chart.y_label = y + " (median; bars: min-max)";
  if (!numeric) chart.x_categories = values[x];
  std::map<std::string, std::size_t> series_index;
  for (const auto& point : points) {
    // The file is input like any other: skip points without the fields a sweep writes.
    if (!point.is_object() || !point.contains("params") || !point["params"].is_object()) continue;
    const auto& params = point["params"];
    auto figure = [&](const char* which) -> const nlohmann::json* {
      if (!point.contains(which) || !point[which].is_object() || !point[which].contains(y)) return nullptr;
      const auto& value = point[which][y];
      return value.is_number() ? &value : nullptr;
    };
    const auto *median = figure("median"), *low = figure("min"), *high = figure("max");
    if (!params.contains(x) || median == nullptr) continue;
    std::string name;
    for (const auto& [param, seen] : values) {
      if (param == x || seen.size() < 2 || !params.contains(param)) continue;
      name += (name.empty() ? "" : " ") + param + "=" + text_of(params[param]);
    }
    if (name.empty()) name = y;
    if (!series_index.contains(name)) {
      series_index[name] = chart.series.size();
      chart.series.push_back({.name = name, .x = {}, .y = {}, .y_low = {}, .y_high = {}});
    }
    auto& series = chart.series[series_index[name]];
    const std::string at = text_of(params[x]);
    series.x.push_back(numeric ? std::strtod(at.c_str(), nullptr)
                               : static_cast<double>(std::find(values[x].begin(), values[x].end(), at) -
                                                     values[x].begin()));
    series.y.push_back(median->get<double>());
    series.y_low.push_back(low != nullptr ? low->get<double>() : median->get<double>());
    series.y_high.push_back(high != nullptr ? high->get<double>() : median->get<double>());
  }
  if (chart.series.empty()) return make_error("--y " + y + ": no point of the sweep has this metric");
  return chart;
}

}  // namespace pagewire::bench
