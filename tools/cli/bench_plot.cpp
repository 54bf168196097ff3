// pagewire bench plot: an SVG chart of one metric of a sweep against one parameter.
#include <boost/program_options.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "pagewire/bench/sweep.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int bench_plot(const std::vector<std::string>& args) {
  std::string input, output, x, y;
  po::options_description d("bench plot options");
  d.add_options()
      ("help,h", "show this help")
      ("input", po::value(&input)->required(), "a sweep's JSON (OUT.json of `pagewire bench sweep`)")
      ("x", po::value(&x)->required(), "the parameter along the x axis, e.g. streams or dirty-rate")
      ("y", po::value(&y)->required(), "the metric to plot, e.g. gbps or downtime_ms")
      ("output", po::value(&output)->required(), "the SVG file to write");
  if (auto done = parse_options(args, d,
                                "pagewire bench plot --input OUT.json --x PARAM --y METRIC --output chart.svg\n"
                                "One line per combination of the other parameters that vary.")) {
    return *done;
  }
  std::ifstream in(input);
  if (!in) {
    std::cerr << "pagewire bench plot: --input " << input << ": cannot read it\n";
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto chart = bench::chart_from_sweep(text.str(), x, y);
  if (!chart) {
    std::cerr << "pagewire bench plot: " << chart.error().message << "\n";
    return 2;
  }
  std::ofstream out(output);
  out << bench::render_svg(*chart);
  if (!out) {
    std::cerr << "pagewire bench plot: --output " << output << ": cannot write it\n";
    return 1;
  }
  std::cout << "wrote " << output << " (" << chart->series.size() << " line(s))\n";
  return 0;
}

}  // namespace pagewire::cli
