#include "pagewire/pagecodec/policy.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include "pagewire/pagecodec/deflate.hpp"
#include "pagewire/pagecodec/record.hpp"

namespace pagewire::pagecodec {

std::size_t max_record_bytes(const Policy& policy, std::uint32_t page_size) {
  const std::size_t batch = std::size_t{policy.deflate_batch_pages} * page_size;
  return kRecordHeaderBytes + std::max(batch, 2 * std::size_t{page_size});
}

Result<Policy> policy_named(std::string_view name) {
  Policy policy;
  if (name == "raw") {
    policy.delta = policy.deflate = false;
  } else if (name == "delta") {
    policy.deflate = false;
  } else if (name == "deflate") {
    policy.delta = false;
  } else if (name == "adaptive") {
    policy.adaptive.enabled = true;
  } else if (name != "full") {
    return make_error("policy '" + std::string(name) + "': expected raw, delta, deflate, full or adaptive");
  }
  return policy;
}

Status Policy::validate() const {
  if (deflate_level < kMinDeflateLevel || deflate_level > kMaxDeflateLevel) {
    return make_error("deflate level " + std::to_string(deflate_level) + ": expected 0..3");
  }
  if (deflate_batch_pages < 1 || deflate_batch_pages > kMaxDeflateBatchPages) {
    return make_error("deflate batch of " + std::to_string(deflate_batch_pages) +
                      " pages: expected 1.." + std::to_string(kMaxDeflateBatchPages));
  }
  if (delta_max_percent < 1 || delta_max_percent > 100) {
    return make_error("delta threshold " + std::to_string(delta_max_percent) +
                      "%: expected 1..100 (percent of a page)");
  }
  if (deflate_max_percent < 1 || deflate_max_percent > 100) {
    return make_error("deflate threshold " + std::to_string(deflate_max_percent) +
                      "%: expected 1..100 (percent of the raw batch)");
  }
  if (adaptive.enabled && !deflate) {
    return make_error("adaptive mode chooses when to deflate: it needs deflate enabled");
  }
  if (adaptive.enabled && !(adaptive.link_bytes_per_second >= 0)) {
    return make_error("adaptive mode's link rate: expected a rate > 0 bytes/s, or 0 to measure it");
  }
  if (adaptive.enabled && !(adaptive.cpu_budget > 0 && adaptive.cpu_budget <= 1)) {
    return make_error("adaptive CPU budget: expected a fraction in (0, 1]");
  }
  return Ok{};
}

namespace {

constexpr double kWeight = 0.125;  // EWMA weight of a new sample, as TCP's SRTT

// A per-byte cost sample is wall time: a core that was preempted mid-batch (lcores sharing a
// CPU, an interrupt) reports a batch many times slower than the codec is. Samples above
// twice the estimate count as twice it, so such spikes move it little while a real change
// still shows within a few batches.
void blend_cost(double* estimate, double sample) {
  if (*estimate == 0) {
    *estimate = sample;
    return;
  }
  *estimate += kWeight * (std::min(sample, 2 * *estimate) - *estimate);
}

void blend(double* estimate, double sample) {
  *estimate = *estimate == 0 ? sample : *estimate + kWeight * (sample - *estimate);
}

}  // namespace

double DeflateAdvisor::wire_seconds_per_byte(double ratio) const {
  double link = policy_.link_bytes_per_second > 0 ? policy_.link_bytes_per_second : measured_link_;
  if (send_cap_ > 0) link = link > 0 ? std::min(link, send_cap_) : send_cap_;  // 0 measured: unknown, not fast
  return link > 0 ? ratio / link : 0;
}

double DeflateAdvisor::deflate_rate() const {
  if (deflate_seconds_per_byte_ == 0) return 0;
  const double cpu = deflate_seconds_per_byte_ / policy_.cpu_budget;
  return 1.0 / std::max(cpu, wire_seconds_per_byte(deflate_ratio_));
}

double DeflateAdvisor::raw_rate() const {
  const double cpu = raw_seconds_per_byte_ / policy_.cpu_budget;
  const double slowest = std::max(cpu, wire_seconds_per_byte(1.0));
  return slowest > 0 ? 1.0 / slowest : std::numeric_limits<double>::infinity();
}

bool DeflateAdvisor::should_deflate() {
  if (!policy_.enabled) return true;
  const double deflate = deflate_rate();
  if (deflate == 0 || deflate > raw_rate()) {
    batches_since_deflate_ = 0;
    probe_interval_ = kProbeInterval;  // once raw wins again, probe soon
    return true;
  }
  if (++batches_since_deflate_ < probe_interval_) return false;
  batches_since_deflate_ = 0;
  if (deflate_samples_ >= kSettledSamples) probe_interval_ = std::min(2 * probe_interval_, kMaxProbeInterval);
  return true;
}

void DeflateAdvisor::record_deflate(std::uint64_t input_bytes, std::uint64_t output_bytes,
                                    std::uint64_t nanoseconds) {
  if (input_bytes == 0) return;
  ++deflate_samples_;
  blend_cost(&deflate_seconds_per_byte_, static_cast<double>(nanoseconds) * 1e-9 /
                                        static_cast<double>(input_bytes));
  blend(&deflate_ratio_, static_cast<double>(output_bytes) / static_cast<double>(input_bytes));
}

void DeflateAdvisor::record_raw(std::uint64_t input_bytes, std::uint64_t nanoseconds) {
  if (input_bytes == 0) return;
  blend_cost(&raw_seconds_per_byte_, static_cast<double>(nanoseconds) * 1e-9 /
                                    static_cast<double>(input_bytes));
}

}  // namespace pagewire::pagecodec
