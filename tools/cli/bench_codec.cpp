// pagewire bench codec
#include <boost/program_options.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "pagewire/pagecodec/xbzrle.hpp"
#include "pagewire/bench/codec_bench.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

namespace {

struct CodecBenchCli {
  bench::CodecBenchOptions options;
  std::vector<std::string> corpora;
  std::uint64_t corpus_mib = 64;
  bool json = false;
};

po::options_description codec_bench_options(CodecBenchCli* cli) {
  po::options_description d("bench codec options");
  auto& o = cli->options;
  d.add_options()
      ("help,h", "show this help")
      ("corpus-mib", po::value(&cli->corpus_mib)->default_value(cli->corpus_mib),
       "size of each corpus in MiB (pre-faulted before timing)")
      ("corpus", po::value(&cli->corpora)->multitoken(),
       "corpora to run: zero text binary random mix (default: all)")
      ("page-size", po::value(&o.page_size)->default_value(o.page_size),
       "guest page size: a power of two from 4096 to 65536")
      ("repeats", po::value(&o.repeats)->default_value(o.repeats),
       "timed passes per figure; the median is reported")
      ("deflate-level", po::value(&o.deflate_level)->default_value(o.deflate_level),
       "ISA-L deflate level 0..3")
      ("batch-pages", po::value(&o.deflate_batch_pages)->default_value(o.deflate_batch_pages),
       "pages per DEFLATE record")
      ("delta-percent", po::value(&o.delta_changed_percent)->default_value(o.delta_changed_percent),
       "percent of each page's bytes changed for the DELTA figures")
      ("delta-runs", po::value(&o.delta_runs)->default_value(o.delta_runs),
       "runs those changed bytes come in")
      ("json", po::bool_switch(&cli->json), "print one JSON object instead of a table");
  return d;
}

int run_codec_bench(CodecBenchCli& cli) {
  cli.options.corpus_bytes = cli.corpus_mib << 20;
  if (!cli.corpora.empty()) {
    cli.options.corpora.clear();
    for (const auto& name : cli.corpora) {
      bool found = false;
      for (auto kind : sim::kAllCorpora) {
        if (sim::to_string(kind) == name) {
          cli.options.corpora.push_back(kind);
          found = true;
        }
      }
      if (!found) {
        std::cerr << "pagewire: --corpus " << name
                  << ": expected one of zero, text, binary, random, mix\n";
        return 2;
      }
    }
  }
  std::ostream& progress = cli.json ? std::cerr : std::cout;
  progress << "pagewire bench codec: one core, delta fast path "
           << pagecodec::xbzrle::best_encoder_name() << "\n";
  auto rows = bench::run_codec_bench(cli.options, progress);
  if (!rows) {
    std::cerr << "pagewire: " << rows.error().message << "\n";
    return 1;
  }
  if (cli.json) {
    bench::print_json(*rows, cli.options, std::cout);
  } else {
    bench::print_table(*rows, std::cout);
  }
  return 0;
}

}  // namespace

int bench_codec(const std::vector<std::string>& args, bool demo_defaults) {
  CodecBenchCli cli;
  if (demo_defaults) {
    cli.corpus_mib = 16;
    cli.options.repeats = 3;
  }
  const char* what = "bench codec";
  if (auto done = parse_options(args, codec_bench_options(&cli), std::string("pagewire ") + what + " [options]")) {
    return *done;
  }
  return run_codec_bench(cli);
}

}  // namespace pagewire::cli
