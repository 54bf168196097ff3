// The median the benchmarks report: of an odd count the middle value, of an even count the
// upper middle one (a value that was measured, not an average of two).
#pragma once

#include <algorithm>
#include <vector>

namespace pagewire::bench {

inline double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace pagewire::bench
