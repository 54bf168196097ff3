// pagewire bench sweep: one benchmark over a grid of parameters; CSV, JSON and a summary.
#include <boost/program_options.hpp>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "cli/commands.hpp"
#include "pagewire/bench/sweep.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int bench_sweep(const std::vector<std::string>& args) {
  std::string kind_name = "transport", out = "sweep";
  std::vector<std::string> params;
  int repeats = 3;
  po::options_description d("bench sweep options");
  d.add_options()
      ("help,h", "show this help")
      ("kind", po::value(&kind_name)->default_value(kind_name),
       "what each run measures: transport (`bench transport`: net_ring pair, memcpy and kernel TCP beside it), "
       "migrate (`demo`: a live migration between two processes over memif) or codec (`bench codec`: every "
       "encoding on every corpus, beside memcpy and ISA-L)")
      ("param", po::value(&params)->composing(),
       "name=v1,v2,...: an option of the run and the values to sweep (one value: fixed); repeatable. "
       "A value 'on' passes a bare flag, 'off' leaves it out")
      ("repeats", po::value(&repeats)->default_value(repeats), "runs per point; median, min and max are recorded")
      ("out", po::value(&out)->default_value(out), "write OUT.csv and OUT.json")
      ("config", po::value<std::string>(), "read options from this file: `name = value` lines, `param` repeatable");
  if (auto done = parse_options(args, d,
                                "pagewire bench sweep --kind KIND --param NAME=V1,V2 ... [options]\n"
                                "e.g. pagewire bench sweep --kind migrate --param policy=raw,full "
                                "--param profile=database,idle-vm --param size-mib=4096")) {
    return *done;
  }
  auto kind = bench::sweep_kind(kind_name);
  if (!kind) {
    std::cerr << "pagewire bench sweep: " << kind.error().message << "\n";
    return 2;
  }
  if (repeats < 1) {
    std::cerr << "pagewire bench sweep: --repeats " << repeats << ": expected at least 1\n";
    return 2;
  }
  bench::SweepOptions options{.executable = "/proc/self/exe", .kind = *kind, .axes = {}, .repeats = repeats};
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  if (length > 0) options.executable.assign(self, static_cast<std::size_t>(length));
  for (const auto& text : params) {
    auto axis = bench::parse_axis(text);
    if (!axis) {
      std::cerr << "pagewire bench sweep: --param " << axis.error().message << "\n";
      return 2;
    }
    options.axes.push_back(std::move(axis).value());
  }
  if (Status checked = bench::check_points(options.executable, *kind, options.axes); !checked) {
    std::cerr << "pagewire bench sweep: " << checked.error().message << "\n";
    return 2;
  }
  const auto machine = bench::describe_machine();
  std::cout << "bench sweep: " << kind_name << " on " << machine.at("cpu_model") << ", " << machine.at("logical_cpus")
            << " CPUs; " << bench::expand_grid(options.axes).size() << " points x " << repeats << " runs" << std::endl;
  const auto results = bench::run_sweep(options, std::cout);
  std::ofstream csv(out + ".csv"), json(out + ".json");
  bench::write_csv(results, options, machine, csv);
  bench::write_json(results, options, machine, json);
  if (!csv || !json) {
    std::cerr << "pagewire bench sweep: --out " << out << ": cannot write " << out << ".csv / .json\n";
    return 1;
  }
  bench::print_summary(results, options, std::cout);
  std::cout << "wrote " << out << ".csv and " << out << ".json" << std::endl;
  int failed = 0;
  for (const auto& result : results) failed += result.runs.empty();
  return failed == 0 ? 0 : 1;
}

}  // namespace pagewire::cli
