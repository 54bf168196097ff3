// What the source writes into the state area at a switchover, after the guest's pages:
// the device state (length first), and for postcopy, the runs of pages the destination does
// not hold current. Little-endian u64 fields throughout:
//
//   [state length][state bytes][run count][first page, page count] x run count
//
// The runs must fit the area: the list is widened (runs joined across their gaps) until it
// does, which only sends some current pages again, never leaves a stale one unmarked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "page_run.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

// `pages` (ascending, distinct) as at most `max_runs` runs covering them all.
std::vector<PageRun> runs_covering(std::span<const std::uint64_t> pages, std::size_t max_runs);
std::vector<std::uint64_t> pages_of(std::span<const PageRun> runs);

// How many runs fit in `area_bytes` after a device state of `state_bytes`.
std::size_t runs_that_fit(std::size_t area_bytes, std::size_t state_bytes);

// Writes the record; the caller checked that it fits (runs_that_fit).
void write_switch_record(std::span<std::byte> area, std::span<const std::byte> device_state,
                         std::span<const PageRun> runs);

// Read back from the network: every length and run checked against the area and against
// `guest_pages`, runs ascending and apart.
Result<std::vector<std::byte>> read_device_state(std::span<const std::byte> area);
Result<std::vector<PageRun>> read_missing_runs(std::span<const std::byte> area, std::uint64_t guest_pages);

}  // namespace pagewire::migration
