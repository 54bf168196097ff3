// pagewire bench track: what tracking a live workload's writes costs (tracker_bench.hpp).
#include <boost/program_options.hpp>

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_events.hpp"
#include "pagewire/bench/tracker_bench.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int bench_track(const std::vector<std::string>& args) {
  bench::TrackerBenchOptions options;
  std::uint64_t size_mib = options.region_bytes >> 20;
  bool json = false;
  po::options_description d("bench track options");
  d.add_options()
      ("help,h", "show this help")
      ("size-mib", po::value(&size_mib)->default_value(size_mib), "memory the workload writes, MiB")
      ("repeats", po::value(&options.repeats)->default_value(options.repeats), "untracked/tracked pairs; medians")
      ("dirty-share", po::value(&options.dirty_share)->default_value(options.dirty_share),
       "share of the pages written before the timed look, 0..1")
      ("hot-fraction", po::value(&options.hot_fraction)->default_value(options.hot_fraction),
       "share of the pages that take 90 % of the writes, 0..1 (1: uniform)")
      ("interval-ms", po::value(&options.interval_ms)->default_value(options.interval_ms),
       "a look every this many ms while the workload runs (a pre-copy round's length)")
      ("run-ms", po::value(&options.run_ms)->default_value(options.run_ms), "each timed workload run")
      ("json", po::bool_switch(&json), "the result as one JSON object");
  if (auto done = parse_options(args, d, "pagewire bench track [options]")) return *done;
  if (size_mib == 0 || options.repeats < 1 || options.interval_ms == 0 || options.run_ms == 0) {
    std::cerr << "pagewire bench track: --size-mib, --repeats, --interval-ms and --run-ms: expected at least 1\n";
    return 2;
  }
  if (options.hot_fraction <= 0 || options.hot_fraction > 1) {
    std::cerr << "pagewire bench track: --hot-fraction " << options.hot_fraction << ": expected more than 0, at most 1\n";
    return 2;
  }
  if (options.dirty_share <= 0 || options.dirty_share > 1) {
    std::cerr << "pagewire bench track: --dirty-share " << options.dirty_share << ": expected more than 0, at most 1\n";
    return 2;
  }
  options.region_bytes = size_mib << 20;
  std::ostream& text = text_output(json);
  text << "bench track: " << size_mib << " MiB written at random by one thread, 8 bytes a write, 90 % of them "
            << "into " << options.hot_fraction * 100 << " % of the pages; userfaultfd "
            << "write-protection read with PAGEMAP_SCAN every " << options.interval_ms << " ms" << std::endl;
  auto result = bench::run_tracker_bench(options, text);
  if (!result) {
    std::cerr << "pagewire bench track: " << result.error().message << "\n";
    return 1;
  }
  const auto& r = *result;
  if (json) {
    emit_event("result", {{"size_mib", size_mib}, {"interval_ms", options.interval_ms},
                                {"clean_look_ms_per_gib", r.clean_look_ms_per_gib},
                                {"look_us_per_dirty_page", r.look_us_per_dirty_page},
                                {"untracked_writes_per_second", r.untracked_writes_per_second},
                                {"tracked_writes_per_second", r.tracked_writes_per_second},
                                {"tracked_vs_untracked", r.tracked_vs_untracked},
                                {"pages_reported_per_look", r.pages_reported_per_look}});
    return 0;
  }
  std::cout << std::fixed << std::setprecision(2) << "a look at clean memory: " << r.clean_look_ms_per_gib
            << " ms per GiB; per dirty page " << r.look_us_per_dirty_page << " us; the workload tracked: "
            << r.tracked_vs_untracked << "x its untracked writes/s (" << std::setprecision(0)
            << r.tracked_writes_per_second << " against " << r.untracked_writes_per_second << "; "
            << r.pages_reported_per_look << " pages reported per look) (medians)" << std::endl;
  return 0;
}

}  // namespace pagewire::cli
