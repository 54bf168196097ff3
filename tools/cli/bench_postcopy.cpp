// pagewire bench postcopy: remote faults on a path of a chosen delay and rate (postcopy_bench.hpp).
#include <boost/program_options.hpp>

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_events.hpp"
#include "pagewire/bench/postcopy_bench.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int bench_postcopy(const std::vector<std::string>& args) {
  bench::PostcopyBenchOptions options;
  bool json = false;
  po::options_description d("bench postcopy options");
  d.add_options()
      ("help,h", "show this help")
      ("size-mib", po::value(&options.size_mib)->default_value(options.size_mib), "guest memory, every page missing at the switch")
      ("delay-ms", po::value(&options.delay_ms)->default_value(options.delay_ms), "the path's delay, each way")
      ("rate-gbps", po::value(&options.rate_gbps)->default_value(options.rate_gbps), "the path's bottleneck; 0: none")
      ("dirty-rate", po::value(&options.dirty_rate)->default_value(options.dirty_rate),
       "pages per second the guest writes on the destination, uniformly, from the switch on")
      ("repeats", po::value(&options.repeats)->default_value(options.repeats), "migrations; medians")
      ("json", po::bool_switch(&json), "the result as one JSON object");
  if (auto done = parse_options(args, d, "pagewire bench postcopy [options]")) return *done;
  std::ostream& text = text_output(json);
  auto eal = init_pair_eal("bench postcopy", text, 2, true);
  if (!eal) {
    std::cerr << "pagewire bench postcopy: " << eal.error().message << "\n";
    return 1;
  }
  text << "bench postcopy: " << options.size_mib << " MiB, postcopy at once over net_ring through a middlebox, "
       << options.delay_ms << " ms each way, " << options.rate_gbps << " Gbit/s; the destination's guest writes "
       << options.dirty_rate << " pages/s" << std::endl;
  auto result = bench::run_postcopy_bench(options, text);
  if (!result) {
    std::cerr << "pagewire bench postcopy: " << result.error().message << "\n";
    return 1;
  }
  const bench::PostcopyBenchRun& m = result->median;
  if (json) {
    emit_event("result", {{"size_mib", options.size_mib}, {"delay_ms", options.delay_ms}, {"rate_gbps", options.rate_gbps},
                          {"dirty_rate", options.dirty_rate}, {"repeats", options.repeats}, {"verified", m.verified},
                          {"pause_ms", m.pause_ms}, {"pages_ms", m.pages_ms}, {"remote_faults", m.remote_faults},
                          {"fault_us", {{"median", m.fault_median_us}, {"p99", m.fault_p99_us}, {"max", m.fault_max_us}}},
                          {"guest_writes", m.guest_writes}});
    return m.verified ? 0 : 1;
  }
  std::cout << std::fixed << std::setprecision(1) << "paused " << m.pause_ms << " ms; the pages in " << m.pages_ms
            << " ms; " << m.remote_faults << " remote faults, waits median " << std::setprecision(0) << m.fault_median_us
            << " us, p99 " << m.fault_p99_us << ", max " << m.fault_max_us << "; the guest wrote " << m.guest_writes
            << " times" << (m.verified ? "; verified" : "; NOT VERIFIED") << " (medians of " << options.repeats << ")"
            << std::endl;
  return m.verified ? 0 : 1;
}

}  // namespace pagewire::cli
