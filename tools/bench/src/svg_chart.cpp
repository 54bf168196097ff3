#include "pagewire/bench/svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

namespace pagewire::bench {

namespace {

constexpr double kWidth = 720, kHeight = 420;
constexpr double kLeft = 80, kRight = 170, kTop = 40, kBottom = 60;
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
                                    "#7f7f7f"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// 1, 2 or 5 times a power of ten, giving about `count` steps over `span`.
double nice_step(double span, int count) {
  const double raw = span / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0}) {
    if (raw <= factor * magnitude) return factor * magnitude;
  }
  return 10 * magnitude;
}

std::string number(double value) {
  std::ostringstream out;
  out << std::setprecision(4) << (std::abs(value) < 1e-12 ? 0.0 : value);
  return out.str();
}

}  // namespace

std::string render_svg(const Chart& chart) {
  const bool categorical = !chart.x_categories.empty();
  double x_min = std::numeric_limits<double>::max(), x_max = std::numeric_limits<double>::lowest();
  double y_max = 0;
  for (const auto& series : chart.series) {
    for (std::size_t i = 0; i < series.x.size(); ++i) {
      x_min = std::min(x_min, series.x[i]);
      x_max = std::max(x_max, series.x[i]);
      y_max = std::max(y_max, i < series.y_high.size() ? series.y_high[i] : series.y[i]);
    }
  }
  if (categorical) {
    x_min = -0.5;
    x_max = static_cast<double>(chart.x_categories.size()) - 0.5;
  } else if (x_min >= x_max) {
    x_min -= 1;
    x_max += 1;
  }
  if (y_max <= 0) y_max = 1;
  const double y_step = nice_step(y_max, 5);
  y_max = std::ceil(y_max / y_step) * y_step;

  const double plot_width = kWidth - kLeft - kRight, plot_height = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x_min) / (x_max - x_min) * plot_width; };
  auto py = [&](double y) { return kTop + plot_height - y / y_max * plot_height; };

  std::ostringstream svg;
  svg << std::fixed << std::setprecision(1);
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kWidth / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << escape(chart.title)
      << "</text>\n";
  // Horizontal grid and y ticks.
  for (double y = 0; y <= y_max + y_step / 2; y += y_step) {
    svg << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft + plot_width << "\" y1=\"" << py(y) << "\" y2=\"" << py(y)
        << "\" stroke=\"#ddd\"/>\n"
        << "<text x=\"" << kLeft - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << number(y) << "</text>\n";
  }
  // X ticks: the categories, or nice steps.
  if (categorical) {
    for (std::size_t i = 0; i < chart.x_categories.size(); ++i) {
      svg << "<text x=\"" << px(static_cast<double>(i)) << "\" y=\"" << kTop + plot_height + 18
          << "\" text-anchor=\"middle\">" << escape(chart.x_categories[i]) << "</text>\n";
    }
  } else {
    const double step = nice_step(x_max - x_min, 6);
    for (double x = std::ceil(x_min / step) * step; x <= x_max + step / 1000; x += step) {
      svg << "<line x1=\"" << px(x) << "\" x2=\"" << px(x) << "\" y1=\"" << kTop + plot_height << "\" y2=\""
          << kTop + plot_height + 5 << "\" stroke=\"black\"/>\n"
          << "<text x=\"" << px(x) << "\" y=\"" << kTop + plot_height + 18 << "\" text-anchor=\"middle\">" << number(x)
          << "</text>\n";
    }
  }
  svg << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft + plot_width << "\" y1=\"" << kTop + plot_height << "\" y2=\""
      << kTop + plot_height << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << kLeft << "\" x2=\"" << kLeft << "\" y1=\"" << kTop << "\" y2=\"" << kTop + plot_height
      << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << kLeft + plot_width / 2 << "\" y=\"" << kHeight - 18 << "\" text-anchor=\"middle\">"
      << escape(chart.x_label) << "</text>\n"
      << "<text transform=\"translate(18," << kTop + plot_height / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
      << escape(chart.y_label) << "</text>\n";

  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const auto& series = chart.series[s];
    const char* colour = kColours[s % std::size(kColours)];
    std::vector<std::size_t> order(series.x.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return series.x[a] < series.x[b]; });
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (std::size_t i : order) svg << px(series.x[i]) << "," << py(series.y[i]) << " ";
    svg << "\"/>\n";
    for (std::size_t i : order) {
      if (i < series.y_low.size() && i < series.y_high.size()) {
        svg << "<line x1=\"" << px(series.x[i]) << "\" x2=\"" << px(series.x[i]) << "\" y1=\"" << py(series.y_low[i])
            << "\" y2=\"" << py(series.y_high[i]) << "\" stroke=\"" << colour << "\"/>\n";
      }
      svg << "<circle cx=\"" << px(series.x[i]) << "\" cy=\"" << py(series.y[i]) << "\" r=\"3.5\" fill=\"" << colour
          << "\"/>\n";
    }
    const double legend_y = kTop + 10 + 20 * static_cast<double>(s);
    svg << "<line x1=\"" << kWidth - kRight + 15 << "\" x2=\"" << kWidth - kRight + 40 << "\" y1=\"" << legend_y
        << "\" y2=\"" << legend_y << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n"
        << "<text x=\"" << kWidth - kRight + 46 << "\" y=\"" << legend_y + 4 << "\">" << escape(series.name)
        << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace pagewire::bench
