// Which encodings the encoder may use, in what order, and when they pay.
//
// Per page the encoder tries, in this order: ZERO (header only), COPY (when the receiver holds
// another page with exactly these bytes), DELTA (when the cache holds the page's last sent
// content and the delta is small enough), then DEFLATE over a batch of contiguous pages,
// falling back to RAW when deflate does not shrink the batch enough.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pagewire/result.hpp"

namespace pagewire::pagecodec {

// Adaptive mode decides per batch whether DEFLATE is worth its CPU time. Compressing pays
// only while the link is the bottleneck: on a fast link a 0.5 GB/s compressor starves it
// (QEMU users see compressed migrations go slower on 10 GbE and up).
struct AdaptivePolicy {
  bool enabled = false;
  // This stream's share of the link, bytes per second (link rate / streams). 0: measured
  // while the migration runs (Encoder::set_measured_link_rate: the transport tells what the
  // path delivers when it holds the sender back); until then the link counts as unbounded.
  double link_bytes_per_second = 0;
  // Fraction of this core's time that encoding may use (the rest is TX/RX work).
  double cpu_budget = 1.0;
};

struct Policy {
  bool zero = true;
  bool delta = true;
  bool deflate = true;
  // COPY for a page byte-for-byte equal to one the receiver already holds (duplicate_index.hpp).
  bool duplicates = true;
  int deflate_level = 1;
  // Pages per DEFLATE record: one stateless call per 4 KiB page is slow and loses
  // cross-page redundancy; 16 x 4 KiB was the knee measured here (docs/benchmarks.md).
  std::uint32_t deflate_batch_pages = 16;
  // DELTA is sent only when its payload is at most this share of a page.
  std::uint32_t delta_max_percent = 70;
  // DEFLATE is sent only when its payload is at most this share of the raw batch.
  std::uint32_t deflate_max_percent = 90;
  bool crc = true;
  AdaptivePolicy adaptive;

  // Checks ranges and combinations; the message names the field and what was expected.
  Status validate() const;
};

inline constexpr std::uint32_t kMaxDeflateBatchPages = 256;

// The largest record an end with `policy` sends or accepts for pages of `page_size`: a RAW
// fallback of a whole DEFLATE batch, and never less than two pages (a RAW batch).
std::size_t max_record_bytes(const Policy& policy, std::uint32_t page_size);

// The named policies the tools offer: raw (zero pages detected, the rest raw), delta
// (XBZRLE against the last sent copy), deflate (ISA-L), full (delta, else deflate), and
// adaptive (full, deflating only while it pays: the caller sets the link's rate).
Result<Policy> policy_named(std::string_view name);

// Per-core estimator behind AdaptivePolicy: exponentially weighted costs per input byte of
// DEFLATE and of RAW, and DEFLATE's output/input ratio, fed from real batches. While it
// prefers RAW it still deflates a probe batch so the estimates follow the data: every
// kProbeInterval batches until kSettledSamples deflated batches have taught it (a first,
// cold batch overstates the cost), then twice as many after each probe that confirms RAW,
// up to kMaxProbeInterval. A deflated batch costs some 40 raw ones on a fast link, so
// steady probing every 64 would cost a raw round about a sixth of its speed.
class DeflateAdvisor {
 public:
  static constexpr std::uint32_t kProbeInterval = 64;
  static constexpr std::uint32_t kMaxProbeInterval = 1024;
  static constexpr std::uint32_t kSettledSamples = 8;

  explicit DeflateAdvisor(const AdaptivePolicy& policy) : policy_(policy) {}

  bool should_deflate();
  void record_deflate(std::uint64_t input_bytes, std::uint64_t output_bytes,
                      std::uint64_t nanoseconds);
  void record_raw(std::uint64_t input_bytes, std::uint64_t nanoseconds);
  // What the path delivers, bytes per second, when AdaptivePolicy::link_bytes_per_second is
  // 0; 0: not known yet (unbounded).
  void set_measured_link(double bytes_per_second) { measured_link_ = bytes_per_second; }
  // The sender's own rate cap (a token bucket, as QEMU's max-bandwidth), bytes per second;
  // 0: none. The link is taken as no faster than it, whatever was measured or configured:
  // under a cap, deflate pays wherever it shrinks pages faster than the cap drains them.
  void set_send_cap(double bytes_per_second) { send_cap_ = bytes_per_second; }

  // Input bytes per second each choice sustains on this core and link share; 0 = unknown.
  double deflate_rate() const;
  double raw_rate() const;

 private:
  AdaptivePolicy policy_;
  double deflate_seconds_per_byte_ = 0;
  double deflate_ratio_ = 0;
  double raw_seconds_per_byte_ = 0;
  double measured_link_ = 0;
  double send_cap_ = 0;
  std::uint32_t batches_since_deflate_ = 0;
  std::uint32_t probe_interval_ = kProbeInterval;
  std::uint32_t deflate_samples_ = 0;
  // Seconds per input byte the link takes at `ratio` wire bytes per input byte; 0 unbounded.
  double wire_seconds_per_byte(double ratio) const;
};

}  // namespace pagewire::pagecodec
