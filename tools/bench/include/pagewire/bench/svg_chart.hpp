// A line chart as a self-contained SVG file: what `pagewire bench plot` draws from a sweep,
// and what docs/benchmarks.md shows. No plotting package needed on the machine.
#pragma once

#include <string>
#include <vector>

namespace pagewire::bench {

struct ChartSeries {
  std::string name;
  std::vector<double> x;  // values, or indices into Chart::x_categories
  std::vector<double> y;
  std::vector<double> y_low, y_high;  // a bar per point (e.g. min and max of the runs); may be empty
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<std::string> x_categories;  // non-empty: x is categorical, spaced evenly
  std::vector<ChartSeries> series;
};

std::string render_svg(const Chart& chart);

}  // namespace pagewire::bench
