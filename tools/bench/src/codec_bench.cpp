#include "pagewire/bench/codec_bench.hpp"

#include <isa-l/igzip_lib.h>
#include <isa-l/mem_routines.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <iomanip>
#include <numeric>
#include <ostream>
#include <random>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/pagecodec/record.hpp"
#include "median.hpp"

namespace pagewire::bench {

using namespace pagewire::pagecodec;

Status CodecBenchOptions::validate() const {
  if (!is_valid_page_size(page_size)) {
    return make_error("--page-size " + std::to_string(page_size) +
                      ": expected a power of two from 4096 to 65536");
  }
  if (corpus_bytes < std::uint64_t{deflate_batch_pages} * page_size ||
      corpus_bytes % page_size != 0) {
    return make_error("--corpus-mib: expected a whole number of pages, at least one batch");
  }
  if (repeats < 1) return make_error("--repeats: expected at least 1");
  if (delta_changed_percent <= 0 || delta_changed_percent > 50 || delta_runs < 1) {
    return make_error("--delta-percent: expected more than 0 and at most 50, in at least one run");
  }
  Policy policy;
  policy.deflate_level = deflate_level;
  policy.deflate_batch_pages = deflate_batch_pages;
  return policy.validate();
}

namespace {

struct Timing {
  double gbps;
  double spread;
  double vs_baseline = 0;  // median of per-repeat ratios to the interleaved baseline
};

double seconds_of(const auto& pass) {
  const auto start = std::chrono::steady_clock::now();
  pass();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `pass` (and `baseline`, when given, right before each pass) `repeats` times after
// one warm-up; each pass handles `bytes` guest bytes. This VM's speed drifts by several x
// within a session, so only ratios of passes timed side by side are compared.
template <typename Pass, typename Baseline>
Timing measure(int repeats, std::uint64_t bytes, Pass&& pass, Baseline&& baseline) {
  pass();
  std::vector<double> rates, ratios;
  for (int r = 0; r < repeats; ++r) {
    const double base_seconds = seconds_of(baseline);
    const double seconds = seconds_of(pass);
    rates.push_back(static_cast<double>(bytes) / seconds / 1e9);
    if (base_seconds > 0) ratios.push_back(base_seconds / seconds);
  }
  const double m = median(rates);
  const auto [lo, hi] = std::minmax_element(rates.begin(), rates.end());
  return {m, (*hi - *lo) / m, ratios.empty() ? 0 : median(ratios)};
}

template <typename Pass>
Timing measure(int repeats, std::uint64_t bytes, Pass&& pass) {
  return measure(repeats, bytes, pass, [] {});
}

class CorpusBench {
 public:
  CorpusBench(const CodecBenchOptions& options, sim::CorpusKind kind, sim::MappedMemory corpus,
              sim::MappedMemory scratch, sim::MappedMemory destination, sim::MappedMemory records)
      : options_(options),
        kind_(kind),
        corpus_(std::move(corpus)),
        scratch_(std::move(scratch)),
        destination_(std::move(destination)),
        records_(std::move(records)),
        pages_(options.corpus_bytes / options.page_size),
        all_pages_(pages_) {
    std::iota(all_pages_.begin(), all_pages_.end(), 0);
  }

  // The baseline: copy every page of the corpus, one page at a time, as a receiver would.
  const std::function<void()> copy_pages_ = [this] {
    for (std::uint64_t p = 0; p < pages_; ++p) {
      std::memcpy(destination_.data() + p * options_.page_size,
                  corpus_.data() + p * options_.page_size, options_.page_size);
    }
  };

  Status run(std::vector<CodecBenchRow>* rows) {
    const std::uint64_t bytes = options_.corpus_bytes;
    const std::uint32_t page = options_.page_size;
    add(rows, "memcpy (baseline)", measure(options_.repeats, bytes, copy_pages_), 0, "");

    int zero_pages = 0;
    add(rows, "zero detect",
        measure(options_.repeats, bytes,
                [&] {
                  zero_pages = 0;
                  for (std::uint64_t p = 0; p < pages_; ++p) {
                    zero_pages += isal_zero_detect(corpus_.data() + p * page, page) == 0;
                  }
                },
                copy_pages_),
        0, "memcpy");

    for (const auto& [stage, policy] : encode_policies()) {
      auto encoded = encode_once(policy);
      if (!encoded) return encoded.error();
      auto encoder = Encoder::create(config(policy, 0));
      const Timing t = measure(
          options_.repeats, bytes, [&] { encode_all(*encoder, corpus_, 0); }, copy_pages_);
      add(rows, stage, t, ratio(*encoded), "memcpy");
    }
    if (auto status = run_deflate(rows); !status) return status;
    if (kind_ != sim::CorpusKind::kZero) {
      if (auto status = run_delta(rows); !status) return status;
    }
    return run_decode(rows);
  }

 private:
  using NamedPolicy = std::pair<std::string, Policy>;

  static Policy make_policy(bool zero, bool delta, bool deflate, bool crc) {
    Policy p;
    p.zero = zero;
    p.delta = delta;
    p.deflate = deflate;
    p.crc = crc;
    p.duplicates = false;
    return p;
  }

  std::vector<NamedPolicy> encode_policies() const {
    Policy whole = make_policy(true, true, true, true);
    whole.deflate_level = options_.deflate_level;
    whole.deflate_batch_pages = options_.deflate_batch_pages;
    whole.duplicates = true;
    // What looking for duplicates costs: every page fingerprinted and looked up (after the
    // first pass, each page finds only itself, so nothing is copied).
    Policy copies = make_policy(true, false, false, true);
    copies.duplicates = true;
    return {{"encode raw (no crc)", make_policy(false, false, false, false)},
            {"encode raw + crc", make_policy(false, false, false, true)},
            {"encode zero+raw", make_policy(true, false, false, true)},
            {"encode zero+raw+copies", copies},
            {"encode default policy", whole}};
  }

  EncoderConfig config(const Policy& policy, std::uint64_t cache_bytes) const {
    return EncoderConfig{.page_size = options_.page_size,
                         .region_pages = pages_,
                         .delta_cache_bytes = cache_bytes,
                         .policy = policy};
  }

  std::size_t encode_all(Encoder& encoder, sim::MappedMemory& region, std::uint32_t generation) {
    const auto memory = PageMap::contiguous(region.data(), pages_, options_.page_size);
    const EncodeProgress progress = encoder.encode(memory, all_pages_, generation, records_.bytes());
    return progress.stop == EncodeStop::kDone ? progress.bytes_written : 0;
  }

  Result<std::size_t> encode_once(const Policy& policy) {
    auto encoder = Encoder::create(config(policy, 0));
    if (!encoder) return encoder.error();
    const std::size_t n = encode_all(*encoder, corpus_, 0);
    if (n == 0) return make_error("record buffer too small for the corpus");
    return n;
  }

  double ratio(std::size_t encoded) const {
    return encoded == 0 ? 0 : static_cast<double>(options_.corpus_bytes) / static_cast<double>(encoded);
  }

  // DEFLATE through the encoder against ISA-L's own stateless call on the same units.
  Status run_deflate(std::vector<CodecBenchRow>* rows) {
    const std::uint64_t bytes = options_.corpus_bytes;
    for (std::uint32_t batch : {1u, options_.deflate_batch_pages}) {
      const std::size_t unit = std::size_t{batch} * options_.page_size;
      std::vector<std::uint8_t> level_buffer(ISAL_DEF_LVL3_DEFAULT);
      isal_zstream stream;
      std::size_t isal_out = 0;
      const auto isal_pass = [&] {
        isal_out = 0;
        for (std::uint64_t offset = 0; offset + unit <= bytes; offset += unit) {
          isal_deflate_stateless_init(&stream);
          stream.level = static_cast<std::uint32_t>(options_.deflate_level);
          stream.level_buf = level_buffer.data();
          stream.level_buf_size = static_cast<std::uint32_t>(level_buffer.size());
          stream.next_in = reinterpret_cast<std::uint8_t*>(corpus_.data() + offset);
          stream.avail_in = static_cast<std::uint32_t>(unit);
          stream.next_out = reinterpret_cast<std::uint8_t*>(records_.data() + offset);
          stream.avail_out = static_cast<std::uint32_t>(unit);
          stream.end_of_stream = 1;
          isal_out += isal_deflate_stateless(&stream) == COMP_OK ? stream.total_out : unit;
        }
      };
      const std::string units = " x" + std::to_string(batch) + " pages";
      const Timing isal = measure(options_.repeats, bytes, isal_pass, copy_pages_);
      add(rows, "isal deflate" + units + " (baseline)", isal, ratio(isal_out), "memcpy");

      Policy policy = make_policy(false, false, true, true);
      policy.deflate_level = options_.deflate_level;
      policy.deflate_batch_pages = batch;
      auto encoded = encode_once(policy);
      if (!encoded) return encoded.error();
      auto encoder = Encoder::create(config(policy, 0));
      const Timing ours = measure(
          options_.repeats, bytes, [&] { encode_all(*encoder, corpus_, 0); }, isal_pass);
      add(rows, "encode deflate" + units, ours, ratio(*encoded), "isal deflate");
    }
    return Ok{};
  }

  // Version B of the corpus differs from A in delta_changed_percent of each page's bytes,
  // in delta_runs runs; encoding A, B, A, B ... makes every page a delta of that size.
  void make_dirty_version() {
    std::memcpy(scratch_.data(), corpus_.data(), options_.corpus_bytes);
    std::mt19937_64 rng(99);
    const auto page = options_.page_size;
    const auto run = static_cast<std::size_t>(page * options_.delta_changed_percent / 100 /
                                              options_.delta_runs);
    for (std::uint64_t p = 0; p < pages_; ++p) {
      std::byte* bytes = scratch_.data() + p * page;
      for (int r = 0; r < options_.delta_runs; ++r) {
        const std::size_t start = rng() % (page - run);
        for (std::size_t k = 0; k < run; ++k) bytes[start + k] ^= std::byte{0x5a};
      }
    }
  }

  Status run_delta(std::vector<CodecBenchRow>* rows) {
    make_dirty_version();
    for (const bool crc : {false, true}) {
      const Policy policy = make_policy(true, true, false, crc);
      auto encoder = Encoder::create(config(policy, options_.corpus_bytes));
      if (!encoder) return encoder.error();
      std::uint32_t generation = 0;
      encode_all(*encoder, corpus_, generation++);
      encode_all(*encoder, corpus_, generation++);  // second send: cached
      std::size_t encoded = 0;
      const Timing t = measure(options_.repeats, options_.corpus_bytes, [&] {
        encoded = encode_all(*encoder, generation % 2 == 0 ? scratch_ : corpus_, generation);
        ++generation;
      }, copy_pages_);
      char stage[64];
      std::snprintf(stage, sizeof stage, "encode delta %.0f%%%s", options_.delta_changed_percent,
                    crc ? " + crc" : " (no crc)");
      add(rows, stage, t, ratio(encoded), "memcpy");
    }
    return Ok{};
  }

  Status run_decode(std::vector<CodecBenchRow>* rows) {
    struct Case {
      const char* stage;
      Policy policy;
    };
    Policy deflate = make_policy(true, false, true, true);
    deflate.deflate_level = options_.deflate_level;
    deflate.deflate_batch_pages = options_.deflate_batch_pages;
    const Case cases[] = {{"decode raw (no crc)", make_policy(false, false, false, false)},
                          {"decode raw + crc", make_policy(false, false, false, true)},
                          {"decode zero+raw", make_policy(true, false, false, false)},
                          {"decode zero+deflate", deflate}};
    for (const Case& c : cases) {
      auto encoded = encode_once(c.policy);
      if (!encoded) return encoded.error();
      auto decoder = Decoder::create(options_.page_size, pages_);
      DecodeError error = DecodeError::kNone;
      const Timing t = measure(options_.repeats, options_.corpus_bytes, [&] {
        std::size_t applied = 0;
        error = decoder->decode_all({records_.data(), *encoded},
                                    PageMap::contiguous(destination_.data(), pages_, options_.page_size), &applied);
      }, copy_pages_);
      if (error != DecodeError::kNone ||
          std::memcmp(destination_.data(), corpus_.data(), options_.corpus_bytes) != 0) {
        return make_error(std::string("bench self-check failed: ") + c.stage +
                          " did not reproduce the corpus (" + std::string(to_string(error)) + ")");
      }
      add(rows, c.stage, t, ratio(*encoded), "memcpy");
    }
    return Ok{};
  }

  void add(std::vector<CodecBenchRow>* rows, const std::string& stage, Timing t, double size_ratio,
           const std::string& baseline) const {
    rows->push_back(CodecBenchRow{std::string(to_string(kind_)), stage, t.gbps, t.spread,
                                  size_ratio, baseline, t.vs_baseline});
  }

  const CodecBenchOptions& options_;
  sim::CorpusKind kind_;
  sim::MappedMemory corpus_;
  sim::MappedMemory scratch_;
  sim::MappedMemory destination_;
  sim::MappedMemory records_;
  std::uint64_t pages_;
  std::vector<std::uint64_t> all_pages_;
};

}  // namespace

Result<std::vector<CodecBenchRow>> run_codec_bench(const CodecBenchOptions& options,
                                                   std::ostream& progress) {
  if (auto status = options.validate(); !status) return status.error();
  std::vector<CodecBenchRow> rows;
  const std::uint64_t record_bytes =
      options.corpus_bytes + (options.corpus_bytes / options.page_size + 1) * kRecordHeaderBytes;
  for (sim::CorpusKind kind : options.corpora) {
    progress << "bench codec: corpus " << to_string(kind) << " (" << (options.corpus_bytes >> 20)
             << " MiB, " << options.repeats << " repeats)\n" << std::flush;
    auto corpus = sim::make_corpus(kind, options.corpus_bytes, options.page_size);
    if (!corpus) return corpus.error();
    auto scratch = sim::MappedMemory::allocate(options.corpus_bytes);
    auto destination = sim::MappedMemory::allocate(options.corpus_bytes);
    auto records = sim::MappedMemory::allocate(record_bytes);
    if (!scratch || !destination || !records) return make_error("cannot map benchmark buffers");
    CorpusBench bench(options, kind, std::move(corpus).value(), std::move(scratch).value(),
                      std::move(destination).value(), std::move(records).value());
    if (auto status = bench.run(&rows); !status) return status.error();
  }
  return rows;
}

void print_table(const std::vector<CodecBenchRow>& rows, std::ostream& out) {
  out << std::left << std::setw(8) << "corpus" << std::setw(34) << "stage" << std::right
      << std::setw(9) << "GB/s" << std::setw(8) << "spread" << std::setw(8) << "size÷" << "  "
      << "vs baseline\n";
  for (const auto& row : rows) {
    out << std::left << std::setw(8) << row.corpus << std::setw(34) << row.stage << std::right
        << std::fixed << std::setprecision(2) << std::setw(9) << row.gbps << std::setw(7)
        << std::setprecision(0) << row.spread * 100 << "%" << std::setprecision(2) << std::setw(8);
    if (row.size_ratio >= 10000) {
      out << ">9999";  // header-only records, e.g. ZERO runs
    } else if (row.size_ratio > 0) {
      out << row.size_ratio;
    } else {
      out << "-";
    }
    out << "  ";
    if (!row.baseline.empty()) out << std::setprecision(2) << row.vs_baseline << "x " << row.baseline;
    out << "\n";
  }
}

void print_json(const std::vector<CodecBenchRow>& rows, const CodecBenchOptions& options,
                std::ostream& out) {
  // "event" and "metrics" let `pagewire bench sweep --kind codec` read it like any run.
  out << "{\"event\":\"result\",\"bench\":\"codec\",\"page_size\":" << options.page_size
      << ",\"corpus_bytes\":" << options.corpus_bytes << ",\"repeats\":" << options.repeats
      << ",\"deflate_level\":" << options.deflate_level
      << ",\"deflate_batch_pages\":" << options.deflate_batch_pages << ",\"rows\":[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out << (i ? "," : "") << "{\"corpus\":\"" << r.corpus << "\",\"stage\":\"" << r.stage
        << "\",\"gbps\":" << r.gbps << ",\"spread\":" << r.spread << ",\"size_ratio\":" << r.size_ratio
        << ",\"baseline\":\"" << r.baseline << "\",\"vs_baseline\":" << r.vs_baseline << "}";
  }
  out << "],\"metrics\":{";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    out << (i ? "," : "") << "\"" << r.corpus << "/" << r.stage << "\":{\"gbps\":" << r.gbps
        << ",\"size_ratio\":" << r.size_ratio << ",\"vs_baseline\":" << r.vs_baseline << "}";
  }
  out << "}}\n";
}

}  // namespace pagewire::bench
