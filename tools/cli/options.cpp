#include <algorithm>
#include <fstream>
#include <sstream>
#include <iostream>

#include "cli/commands.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

SplitArguments split_at_dashes(const std::vector<std::string>& args) {
  const auto dashes = std::find(args.begin(), args.end(), "--");
  return {{args.begin(), dashes}, {dashes == args.end() ? dashes : dashes + 1, args.end()}};
}

namespace {

template <typename... Unsigned>
bool is_unsigned_option(const po::value_semantic* semantic) {
  return ((dynamic_cast<const po::typed_value<Unsigned>*>(semantic) != nullptr) || ...);
}

// Boost converts "-5" into an unsigned option as 2^64 - 5: a size or count given as a
// negative number is refused, naming the option, before it is stored.
void refuse_negative_unsigned(const po::parsed_options& parsed, const po::options_description& options) {
  for (const po::option& option : parsed.options) {
    const po::option_description* description = options.find_nothrow(option.string_key, false);
    if (description == nullptr || option.value.empty()) continue;
    if (!is_unsigned_option<unsigned char, unsigned short, unsigned, unsigned long, unsigned long long>(
            description->semantic().get())) {
      continue;
    }
    for (const std::string& value : option.value) {
      if (value.find('-') != std::string::npos) {
        throw po::error("--" + option.string_key + " " + value + ": expected a whole number of 0 or more");
      }
    }
  }
}

}  // namespace

std::optional<int> parse_options(const std::vector<std::string>& args, const po::options_description& options,
                                 const std::string& usage, const po::positional_options_description* positional) {
  po::command_line_parser parser(args);
  parser.options(options);
  if (positional != nullptr) parser.positional(*positional);
  po::variables_map vm;
  const po::parsed_options parsed = parser.run();
  refuse_negative_unsigned(parsed, options);
  po::store(parsed, vm);
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

Result<std::vector<unsigned>> parse_cpu_list(const std::string& option, const std::string& text) {
  std::vector<unsigned> cpus;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    std::size_t used = 0;
    unsigned long cpu = 0;
    try {
      cpu = std::stoul(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || item[0] == '-' || cpu >= 4096) {
      return make_error("--" + option + " " + text + ": expected CPU numbers separated by commas, e.g. 2,3");
    }
    cpus.push_back(static_cast<unsigned>(cpu));
  }
  return cpus;
}

}  // namespace pagewire::cli
