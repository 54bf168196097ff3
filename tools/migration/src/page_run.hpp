// A run of pages: [first, first + count). How postcopy names the pages a destination lacks.
#pragma once

#include <cstdint>

namespace pagewire::migration {

struct PageRun {
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  bool operator==(const PageRun&) const = default;
};

}  // namespace pagewire::migration
