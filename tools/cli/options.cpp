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
  if (vm.count("help")) {
    std::cout << "usage: " << usage << "\n" << options;
    return 0;
  }
  po::notify(vm);
  return std::nullopt;
}

}  // namespace pagewire::cli
