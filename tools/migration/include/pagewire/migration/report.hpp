// What a migration is asked to do and what it reports, at both ends. No DPDK here: an
// embedder includes this through source.hpp and destination.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pagewire/pagecodec/record.hpp"

namespace pagewire::migration {

struct MigrationOptions {
  std::uint32_t downtime_limit_ms = 300;  // QEMU's default
  // The rate the final round is expected to go at, for the switchover decision (as QEMU's
  // avail-switchover-bandwidth). 0: the last round's measured rate for pages with content.
  double switchover_gbps = 0;
  std::uint32_t max_rounds = 30;
  // Past this the migration aborts, mid-round too: a round has no limit of its own, since a
  // large guest's first round alone can take minutes. The switchover, once begun, runs on.
  std::uint32_t max_seconds = 600;
  // Rounds that shrink the dirty set by less than 10% twice in a row are not converging:
  // auto-converge throttles the guest (20%, then +10% a step, as QEMU's cpu-throttle does);
  // without it the migration switches over anyway and takes the longer downtime.
  bool auto_converge = true;
  double throttle_first = 0.2;
  double throttle_step = 0.1;
  double throttle_max = 0.95;
  // How long the paused source waits for the destination's digest before it gives up and
  // resumes its guest.
  std::uint32_t verify_timeout_ms = 10000;
  // How long it asks for the answer to COMMIT before the outcome is "unknown" (the guest
  // then stays paused): the destination keeps answering for longer than this
  // (transport::SessionConfig::commit_linger_ms), so a path dark for less than this still
  // resolves it.
  std::uint32_t commit_timeout_ms = 30000;
  // Postcopy: run the guest on the destination before all its pages are there, and push the
  // rest while it asks for what it touches. kAfterRounds: after postcopy_after_rounds
  // pre-copy rounds (or at the usual switchover, should pre-copy converge first).
  // kWhenStuck: when pre-copy stops converging, instead of throttling the guest. kNow:
  // before any round. The destination must have a start hook (PostcopyStartHook).
  enum class Postcopy : std::uint8_t { kOff, kAfterRounds, kWhenStuck, kNow };
  Postcopy postcopy = Postcopy::kOff;
  std::uint32_t postcopy_after_rounds = 1;
};

// Pages needed after the guest's to carry a device-state blob of up to `max_state_bytes`.
std::uint64_t state_pages_for(std::uint64_t max_state_bytes, std::uint32_t page_size);

struct RoundReport {
  std::uint32_t round = 0;
  std::uint64_t pages = 0;
  std::uint64_t wire_bytes = 0;          // record bytes put in frames this round
  double seconds = 0;
  double guest_gbps = 0;                 // guest bytes moved per second
  double dirty_pages_per_second = 0;     // measured over the round
  std::uint64_t dirty_pages = 0;         // dirtied during the round: the next round's work
  double throttle = 0;
  std::array<std::uint64_t, pagecodec::kEncodingCount> pages_by_encoding{};
};

// Where the current round is, about every 100 ms.
struct RoundProgress {
  std::uint32_t round = 0;
  std::uint64_t pages_done = 0;   // encoded and handed to the streams
  std::uint64_t pages = 0;        // in this round
  double seconds = 0;             // since the round began
};

struct MigrationReport {
  bool verified = false;
  std::string digest;
  double expected_downtime_ms = 0;  // what the switchover decision predicted
  // Where the downtime went: final round, FIN of every stream, digest exchange, commit.
  // pause: stopping the guest and collecting what it wrote since the last round.
  double pause_ms = 0, final_round_ms = 0, finish_ms = 0, verify_ms = 0, commit_ms = 0;
  double total_seconds = 0;
  double downtime_ms = 0;   // guest paused -> destination confirmed
  std::uint32_t rounds = 0;
  std::uint64_t guest_pages = 0;
  std::uint64_t pages_sent = 0;
  std::uint64_t wire_bytes = 0;
  double final_throttle = 0;
  std::array<std::uint64_t, pagecodec::kEncodingCount> pages_by_encoding{};
  // Outages longer than the peer timeout ridden out while the guest ran (resume window),
  // and the longest silence of the destination, in ms.
  std::uint32_t outages_ridden = 0;
  double longest_silence_ms = 0;
  // Postcopy: downtime_ms is then from the pause to the guest running on the destination.
  bool postcopy = false;
  std::uint64_t postcopy_pages = 0;      // what the destination lacked at the switch
  std::uint64_t pages_requested = 0;     // sent ahead of the rest, asked for by its faults
  double postcopy_pages_ms = 0;          // from the switch to the last page acknowledged
};

// The destination's view of postcopy (ReceiveReport::postcopy).
struct PostcopyReceiveReport {
  bool switched = false;            // the guest started here before all its pages came
  std::uint64_t missing_pages = 0;  // at the switch
  double switch_ms = 0;             // from the source's request to the guest started here
  double pages_ms = 0;              // from the guest's start to the last page's arrival
  std::uint64_t remote_faults = 0;  // first touches of a missing page: each waited for the source
  std::uint64_t pages_requested = 0;  // asked for ahead of the background push
  double fault_median_us = 0;       // a fault's wait, from its report to the page in place
  double fault_p99_us = 0;
  double fault_max_us = 0;
};

struct ReceiveReport {
  std::string digest;
  double digest_ms = 0;       // from the FIN to the digest: combining the block digests
  double commit_wait_ms = 0;  // from the digest to the source's COMMIT
  double commit_hook_ms = 0;  // the commit hook, while the source waits for our answer
  std::vector<std::byte> device_state;
  PostcopyReceiveReport postcopy;
};

}  // namespace pagewire::migration
