// The sweep harness's pieces: grids expand in a fixed order, runs get the options they
// name, results are read from the run's JSON and summarised, and a chart comes out of the
// sweep's own JSON.
#include "pagewire/bench/sweep.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace pagewire::bench {
namespace {

TEST(Sweep, ParsesAxesAndRefusesMalformedOnes) {
  auto axis = parse_axis("streams=1,2,4");
  ASSERT_TRUE(axis) << axis.error().message;
  EXPECT_EQ(axis->name, "streams");
  EXPECT_EQ(axis->values, (std::vector<std::string>{"1", "2", "4"}));
  EXPECT_FALSE(parse_axis("streams"));
  EXPECT_FALSE(parse_axis("=1"));
  EXPECT_FALSE(parse_axis("streams="));
  EXPECT_FALSE(parse_axis("streams=1,,2"));
}

TEST(Sweep, ExpandsEveryCombinationFirstAxisSlowest) {
  const auto points = expand_grid({{"a", {"1", "2"}}, {"b", {"x", "y", "z"}}});
  ASSERT_EQ(points.size(), 6u);
  EXPECT_EQ(points[0], (SweepPoint{{"a", "1"}, {"b", "x"}}));
  EXPECT_EQ(points[2], (SweepPoint{{"a", "1"}, {"b", "z"}}));
  EXPECT_EQ(points[3], (SweepPoint{{"a", "2"}, {"b", "x"}}));
}

TEST(Sweep, MigrateRunsSplitDemoAndSourceOptionsAndFlagsAreBare) {
  auto kind = sweep_kind("migrate");
  ASSERT_TRUE(kind);
  const auto args = run_arguments(*kind, {{"policy", "raw"}, {"size-mib", "64"}, {"no-auto-converge", "on"},
                                          {"gateway", "off"}});
  EXPECT_EQ(args, (std::vector<std::string>{"demo", "--json", "--size-mib", "64", "--", "--policy", "raw",
                                            "--no-auto-converge"}));
  EXPECT_FALSE(sweep_kind("teleport"));
}

TEST(Sweep, ReadsTheResultEventFlattenedAndIgnoresOtherLines) {
  const std::string output =
      "text first\n"
      "{\"event\":\"round\",\"gbps\":1}\n"
      "{\"event\":\"migrated\",\"gbps\":2.5,\"verified\":true,\"digest\":\"ab\",\"phases\":{\"verify\":3},"
      "\"pages\":[4,5]}\n";
  auto metrics = parse_metrics(output, "migrated");
  ASSERT_TRUE(metrics) << metrics.error().message;
  EXPECT_EQ(metrics->at("gbps"), 2.5);
  EXPECT_EQ(metrics->at("verified"), 1);
  EXPECT_EQ(metrics->at("phases.verify"), 3);
  EXPECT_EQ(metrics->at("pages.1"), 5);
  EXPECT_FALSE(metrics->contains("digest"));
  EXPECT_FALSE(parse_metrics("{\"event\":\"round\"}\n{broken\n", "migrated"));
  EXPECT_FALSE(parse_metrics("{\"event\":5}\n", "migrated"));
}

TEST(Sweep, SummarisesMedianMinAndMax) {
  const auto stats = summarize({{{"x", 3}}, {{"x", 1}}, {{"x", 10}}});
  EXPECT_EQ(stats.at("x").median, 3);
  EXPECT_EQ(stats.at("x").min, 1);
  EXPECT_EQ(stats.at("x").max, 10);
}

TEST(Sweep, WritesCsvAndJsonThatPlotReadsBack) {
  auto kind = sweep_kind("transport");
  ASSERT_TRUE(kind);
  const SweepOptions options{.executable = "", .kind = *kind,
                             .axes = {{"streams", {"1", "2"}}, {"mtu", {"1500", "9000"}}}, .repeats = 2};
  std::vector<PointResult> results;
  double gbps = 1;
  for (const auto& point : expand_grid(options.axes)) {
    PointResult result{.point = point, .runs = {{{"gbps", gbps}}, {{"gbps", gbps + 1}}}, .stats = {}, .failures = 0,
                       .last_error = {}};
    result.stats = summarize(result.runs);
    results.push_back(result);
    gbps *= 2;
  }
  const std::map<std::string, std::string> machine{{"cpu_model", "Test CPU, 2 cores"}};
  std::ostringstream csv, json;
  write_csv(results, options, machine, csv);
  write_json(results, options, machine, json);
  // A header and one row per point; the machine's comma is quoted.
  const std::string table = csv.str();
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 5);
  EXPECT_NE(table.find("\"Test CPU, 2 cores\""), std::string::npos);
  EXPECT_NE(table.find("kind,streams,mtu,runs,failures,gbps,gbps_min,gbps_max"), std::string::npos);

  auto chart = chart_from_sweep(json.str(), "streams", "gbps");
  ASSERT_TRUE(chart) << chart.error().message;
  ASSERT_EQ(chart->series.size(), 2u);  // one line per MTU
  EXPECT_EQ(chart->series[0].name, "mtu=1500");
  EXPECT_EQ(chart->series[0].x, (std::vector<double>{1, 2}));
  EXPECT_EQ(chart->series[0].y, (std::vector<double>{1.5, 4.5}));  // medians of (1,2) and (4,5)
  const std::string svg = render_svg(*chart);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("mtu=9000"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);

  EXPECT_FALSE(chart_from_sweep(json.str(), "window", "gbps"));
  EXPECT_FALSE(chart_from_sweep(json.str(), "streams", "downtime_ms"));
  EXPECT_FALSE(chart_from_sweep("not json", "streams", "gbps"));
  // A hand-edited file: numbers where strings were, a point without figures, a non-numeric
  // median. Read what is usable, never throw.
  const std::string edited = R"({"kind":7,"points":[{"params":{"streams":1,"mtu":"9000"},"median":{"gbps":2}},
      {"params":{"streams":2}},{"params":{"streams":3},"median":{"gbps":"fast"}},5]})";
  auto partial = chart_from_sweep(edited, "streams", "gbps");
  ASSERT_TRUE(partial) << partial.error().message;
  EXPECT_EQ(partial->series.size(), 1u);
  EXPECT_EQ(partial->series[0].y, (std::vector<double>{2}));
}

}  // namespace
}  // namespace pagewire::bench
