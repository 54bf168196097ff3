// The pagewire command line: each command is a thin client of the component libraries.
#pragma once

#include <string>
#include <vector>

namespace pagewire::cli {

int bench_codec(const std::vector<std::string>& args, bool demo_defaults = false);
int bench_transport(const std::vector<std::string>& args);
int topo(const std::vector<std::string>& args);
int source(const std::vector<std::string>& args);
int destination(const std::vector<std::string>& args);
int demo(const std::vector<std::string>& args, const char* self);
int image(const std::vector<std::string>& args);

}  // namespace pagewire::cli
