#include <fstream>
#include <iostream>

#include "cli/commands.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

std::optional<int> parse_options(const std::vector<std::string>& args, const po::options_description& options,
                                 const std::string& usage, const po::positional_options_description* positional) {
  po::command_line_parser parser(args);
  parser.options(options);
  if (positional != nullptr) parser.positional(*positional);
  po::variables_map vm;
  po::store(parser.run(), vm);
  // A command that offers --config reads `key = value` lines from it; the command line,
  // stored first, wins over the file.
  if (options.find_nothrow("config", false) != nullptr && vm.count("config")) {
    const auto path = vm["config"].as<std::string>();
    std::ifstream file(path);
    if (!file) throw po::error("--config " + path + ": cannot read it");
    po::store(po::parse_config_file(file, options), vm);
  }
  if (vm.count("help")) {
    std::cout << "usage: " << usage << "\n" << options;
    return 0;
  }
  po::notify(vm);
  return std::nullopt;
}

Result<transport::StreamTuning::CongestionControl> parse_congestion_control(const std::string& text) {
  using Mode = transport::StreamTuning::CongestionControl;
  if (text == "auto") return Mode::kAuto;
  if (text == "on") return Mode::kOn;
  if (text == "off") return Mode::kOff;
  return make_error("--congestion-control " + text + ": expected auto, on or off");
}

}  // namespace pagewire::cli
