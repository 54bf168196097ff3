// pagewire bench qemu IMAGE: QEMU and pagewire migrate the same image, interleaved.
#include <boost/program_options.hpp>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/json_events.hpp"
#include "pagewire/bench/qemu_bench.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

namespace {

nlohmann::json stats_json(const bench::MetricStats& stats) {
  return {{"median", stats.median}, {"min", stats.min}, {"max", stats.max}};
}

nlohmann::json result_json(const bench::QemuBenchResult& result, const bench::QemuBenchOptions& options) {
  nlohmann::json summaries = nlohmann::json::array();
  for (const auto& s : result.summaries) {
    nlohmann::json entry{{"configuration", s.configuration}, {"runs", s.runs},
                         {"failures", s.failures}, {"total_seconds", stats_json(s.total_seconds)},
                         {"downtime_ms", stats_json(s.downtime_ms)}, {"wire_mib", stats_json(s.wire_mib)}};
    if (s.configuration != "pagewire") {
      entry["pagewire_ratio"] = {{"total", s.pagewire_total_ratio}, {"downtime", s.pagewire_downtime_ratio}};
    }
    if (!s.last_error.empty()) entry["last_error"] = s.last_error;
    summaries.push_back(entry);
  }
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : result.runs) {
    runs.push_back({{"configuration", r.configuration}, {"pair", r.pair + 1}, {"total_seconds", r.total_seconds},
                    {"downtime_ms", r.downtime_ms}, {"wire_bytes", r.wire_bytes}});
  }
  return {{"image", options.image}, {"image_bytes", result.image_bytes},
          {"pairs", options.pairs}, {"pagewire_source_args", options.pagewire_source_args},
          {"machine", bench::describe_machine()}, {"summaries", summaries}, {"runs", runs}};
}

void print_table(const bench::QemuBenchResult& result, std::ostream& out) {
  out << std::fixed << "\n" << std::left << std::setw(26) << "configuration" << std::right << std::setw(22)
      << "total s (min-max)" << std::setw(24) << "downtime ms (min-max)" << std::setw(11) << "wire MiB"
      << std::setw(22) << "pagewire / it" << "\n";
  for (const auto& s : result.summaries) {
    std::ostringstream total, downtime, ratio;
    total << std::fixed << std::setprecision(2) << s.total_seconds.median << " (" << s.total_seconds.min << "-"
          << s.total_seconds.max << ")";
    downtime << std::fixed << std::setprecision(0) << s.downtime_ms.median << " (" << s.downtime_ms.min << "-"
             << s.downtime_ms.max << ")";
    if (s.configuration != "pagewire" && s.pagewire_total_ratio > 0) {
      ratio << std::fixed << std::setprecision(2) << s.pagewire_total_ratio << " total, " << s.pagewire_downtime_ratio
            << " down";
    }
    out << std::left << std::setw(26) << s.configuration << std::right << std::setw(22)
        << (s.runs > 0 ? total.str() : "-") << std::setw(24) << (s.runs > 0 ? downtime.str() : "-") << std::setw(11)
        << std::setprecision(0) << s.wire_mib.median << std::setw(22) << ratio.str();
    if (s.failures > 0) out << "  (" << s.failures << " failed: " << s.last_error << ")";
    out << "\n";
  }
  out << "medians over the pairs; ratios are pagewire's per pair, below 1 means pagewire took less\n";
}

void write_csv(const bench::QemuBenchResult& result, std::ostream& out) {
  out << "configuration,pair,total_seconds,downtime_ms,wire_bytes\n";
  for (const auto& r : result.runs) {
    out << r.configuration << "," << r.pair + 1 << "," << r.total_seconds << "," << r.downtime_ms << ","
        << r.wire_bytes << "\n";
  }
}

}  // namespace

int bench_qemu(const std::vector<std::string>& all_args) {
  // pagewire src options come after `--`.
  auto [args, source_args] = split_at_dashes(all_args);
  bench::QemuBenchOptions options;
  options.pagewire_source_args = std::move(source_args);
  std::string channels = "1,2", out;
  bool json = false;
  po::options_description d("bench qemu options");
  d.add_options()
      ("help,h", "show this help")
      ("image", po::value(&options.image), "the guest memory image (a raw file of whole MiB; `pagewire image create`)")
      ("pairs", po::value(&options.pairs)->default_value(options.pairs),
       "rounds of every configuration, interleaved; medians are reported")
      ("channels", po::value(&channels)->default_value(channels),
       "QEMU configurations: 1 for classic migration, N > 1 for multifd with N channels, e.g. 1,2,4")
      ("qemu", po::value(&options.qemu)->default_value(options.qemu),
       "the QEMU binary (Debian's qemu-system-x86 is installed when missing and we are root)")
      ("memory-dir", po::value(&options.memory_directory)->default_value(options.memory_directory),
       "where QEMU's destination keeps its RAM file")
      ("port", po::value(&options.tcp_port), "QEMU's loopback TCP port (default: derived from the pid)")
      ("out", po::value(&out), "also write OUT.csv (one row per run) and OUT.json")
      ("json", po::bool_switch(&json), "print the result as one JSON object instead of the table");
  po::positional_options_description positional;
  positional.add("image", 1);
  if (auto done = parse_options(args, d,
                                "pagewire bench qemu IMAGE [options] [-- pagewire src options]\n"
                                "e.g. pagewire bench qemu guest.raw --pairs 5 --channels 1,2 -- --streams 2",
                                &positional)) {
    return *done;
  }
  if (options.image.empty()) {
    std::cerr << "pagewire bench qemu: IMAGE: expected a guest memory image\n";
    return 2;
  }
  auto channel_counts = parse_cpu_list("channels", channels);  // the same shape: numbers and commas
  if (!channel_counts || channel_counts->empty() ||
      std::any_of(channel_counts->begin(), channel_counts->end(), [](unsigned c) { return c == 0 || c > 255; })) {
    std::cerr << "pagewire bench qemu: --channels " << channels << ": expected channel counts 1..255, e.g. 1,2\n";
    return 2;
  }
  options.qemu_channels = *channel_counts;
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  options.pagewire = length > 0 ? std::string(self, static_cast<std::size_t>(length)) : "/proc/self/exe";
  std::ostream& progress = json ? std::cerr : std::cout;
  if (auto status = bench::ensure_qemu(options.qemu, progress); !status) {
    std::cerr << "pagewire bench qemu: " << status.error().message << "\n";
    return 1;
  }
  auto result = bench::run_qemu_bench(options, progress);
  if (!result) {
    std::cerr << "pagewire bench qemu: " << result.error().message << "\n";
    return 2;
  }
  if (json) {
    emit_event("bench_qemu", result_json(*result, options));
  } else {
    print_table(*result, std::cout);
  }
  if (!out.empty()) {
    std::ofstream csv(out + ".csv"), file(out + ".json");
    write_csv(*result, csv);
    file << result_json(*result, options).dump(2) << "\n";
    if (!csv || !file) {
      std::cerr << "pagewire bench qemu: --out " << out << ": cannot write " << out << ".csv / .json\n";
      return 1;
    }
  }
  const bool complete = std::all_of(result->summaries.begin(), result->summaries.end(),
                                    [](const bench::QemuBenchSummary& s) { return s.failures == 0; });
  return complete ? 0 : 1;
}

}  // namespace pagewire::cli
