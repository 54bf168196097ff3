#include "switch_record.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "pagewire/byte_order.hpp"

namespace pagewire::migration {

namespace {

constexpr std::size_t kField = sizeof(std::uint64_t);

std::uint64_t field_at(std::span<const std::byte> area, std::size_t offset) {
  le64 value;
  std::memcpy(&value, area.data() + offset, kField);
  return value.get();
}

void put_field(std::span<std::byte> area, std::size_t offset, std::uint64_t value) {
  le64 field;
  field.set(value);
  std::memcpy(area.data() + offset, &field, kField);
}

}  // namespace

std::vector<PageRun> runs_covering(std::span<const std::uint64_t> pages, std::size_t max_runs) {
  std::vector<PageRun> runs;
  for (std::uint64_t page : pages) {
    if (!runs.empty() && runs.back().first + runs.back().count == page) ++runs.back().count;
    else runs.push_back({page, 1});
  }
  if (runs.size() <= std::max<std::size_t>(max_runs, 1)) return runs;
  // Join across the smallest gaps: the fewest current pages marked missing.
  std::vector<std::uint64_t> gaps;
  for (std::size_t r = 1; r < runs.size(); ++r) gaps.push_back(runs[r].first - (runs[r - 1].first + runs[r - 1].count));
  const std::size_t joins = runs.size() - std::max<std::size_t>(max_runs, 1);
  std::vector<std::uint64_t> sorted = gaps;
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(joins - 1), sorted.end());
  const std::uint64_t threshold = sorted[joins - 1];
  std::size_t below = static_cast<std::size_t>(std::count_if(gaps.begin(), gaps.end(), [&](auto g) { return g < threshold; }));
  std::size_t at_threshold_to_join = joins - below;
  std::vector<PageRun> joined{runs[0]};
  for (std::size_t r = 1; r < runs.size(); ++r) {
    const std::uint64_t gap = gaps[r - 1];
    const bool join = gap < threshold || (gap == threshold && at_threshold_to_join > 0);
    if (gap == threshold && join) --at_threshold_to_join;
    if (join) joined.back().count = runs[r].first + runs[r].count - joined.back().first;
    else joined.push_back(runs[r]);
  }
  return joined;
}

std::vector<std::uint64_t> pages_of(std::span<const PageRun> runs) {
  std::vector<std::uint64_t> pages;
  for (const PageRun& run : runs) {
    for (std::uint64_t p = run.first; p < run.first + run.count; ++p) pages.push_back(p);
  }
  return pages;
}

std::size_t runs_that_fit(std::size_t area_bytes, std::size_t state_bytes) {
  const std::size_t fixed = 2 * kField + state_bytes;
  return area_bytes > fixed ? (area_bytes - fixed) / (2 * kField) : 0;
}

void write_switch_record(std::span<std::byte> area, std::span<const std::byte> device_state,
                         std::span<const PageRun> runs) {
  put_field(area, 0, device_state.size());
  if (!device_state.empty()) std::memcpy(area.data() + kField, device_state.data(), device_state.size());
  std::size_t at = kField + device_state.size();
  put_field(area, at, runs.size());
  for (const PageRun& run : runs) {
    put_field(area, at += kField, run.first);
    put_field(area, at += kField, run.count);
  }
}

Result<std::vector<std::byte>> read_device_state(std::span<const std::byte> area) {
  if (area.size() < kField) {
    return make_error(ErrorCode::kConfiguration, "the device state area of " + std::to_string(area.size()) +
                                                     " bytes cannot hold even the state's length");
  }
  const std::uint64_t length = field_at(area, 0);
  if (length > area.size() - kField) {
    return make_error(ErrorCode::kVerification, "device state claims " + std::to_string(length) + " bytes; at most " +
                                                    std::to_string(area.size() - kField) + " fit");
  }
  const std::byte* state = area.data() + kField;
  return std::vector<std::byte>(state, state + length);
}

Result<std::vector<PageRun>> read_missing_runs(std::span<const std::byte> area, std::uint64_t guest_pages) {
  auto state = read_device_state(area);
  if (!state) return state.error();
  const std::size_t at = kField + state->size();
  if (area.size() - at < kField) return make_error(ErrorCode::kVerification, "postcopy: no list of missing pages after the device state");
  const std::uint64_t count = field_at(area, at);
  if (count > runs_that_fit(area.size(), state->size())) {
    return make_error(ErrorCode::kVerification, "postcopy: " + std::to_string(count) + " runs of missing pages claimed; at most " +
                                                    std::to_string(runs_that_fit(area.size(), state->size())) + " fit");
  }
  std::vector<PageRun> runs;
  for (std::uint64_t r = 0; r < count; ++r) {
    const PageRun run{field_at(area, at + kField * (1 + 2 * r)), field_at(area, at + kField * (2 + 2 * r))};
    const std::uint64_t after_last = runs.empty() ? 0 : runs.back().first + runs.back().count;
    if (run.count == 0 || run.first < after_last || run.first > guest_pages || run.count > guest_pages - run.first) {
      return make_error(ErrorCode::kVerification, "postcopy: missing run " + std::to_string(r) + " (" +
                                                      std::to_string(run.first) + " +" + std::to_string(run.count) +
                                                      ") is empty, out of order or past the guest's " +
                                                      std::to_string(guest_pages) + " pages");
    }
    runs.push_back(run);
  }
  return runs;
}

}  // namespace pagewire::migration
