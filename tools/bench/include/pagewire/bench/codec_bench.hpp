// `pagewire bench codec`: per-core speed and size ratio of every pagecodec encoding on the
// documented corpora, each beside a baseline timed in the same run (memcpy of the same
// pages; ISA-L's own stateless deflate on the same units). Single-threaded: one stream core.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/sim/corpus.hpp"

namespace pagewire::bench {

struct CodecBenchOptions {
  std::uint64_t corpus_bytes = 64ull << 20;
  std::uint32_t page_size = 4096;
  int repeats = 5;
  int deflate_level = 1;
  std::uint32_t deflate_batch_pages = 16;
  double delta_changed_percent = 5.0;  // of each page's bytes, in delta_runs runs
  int delta_runs = 3;
  std::vector<sim::CorpusKind> corpora{std::begin(sim::kAllCorpora), std::end(sim::kAllCorpora)};

  Status validate() const;
};

struct CodecBenchRow {
  std::string corpus;
  std::string stage;     // e.g. "encode delta", "decode raw"
  double gbps = 0;       // median GB/s of guest page bytes (input to encode, output of decode)
  double spread = 0;     // (max - min) / median over the repeats
  double size_ratio = 0; // guest bytes / encoded bytes (0 where meaningless)
  std::string baseline;  // what `vs_baseline` divides by
  double vs_baseline = 0;
};

// Runs the grid; `progress` gets one line per corpus.
Result<std::vector<CodecBenchRow>> run_codec_bench(const CodecBenchOptions& options,
                                                   std::ostream& progress);

void print_table(const std::vector<CodecBenchRow>& rows, std::ostream& out);
void print_json(const std::vector<CodecBenchRow>& rows, const CodecBenchOptions& options,
                std::ostream& out);

}  // namespace pagewire::bench
