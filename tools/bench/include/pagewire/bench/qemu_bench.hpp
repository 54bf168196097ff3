// `pagewire bench qemu IMAGE`: the same guest memory image migrated by QEMU and by pagewire,
// interleaved in one sitting, so the ratio is measured and not remembered.
//
// QEMU (qemu-system-x86_64) runs a paused guest (-S: no code runs, nothing is dirtied) whose
// RAM is the image file mapped privately (memory-backend-file, share=off), to a destination
// whose RAM is preallocated (prealloc=on), over loopback TCP, with max-bandwidth lifted, once
// per channel count asked for (1: classic migration; N > 1: multifd with N channels).
// pagewire runs `src --image IMAGE --dirty-rate 0` to `dst` over memif, two processes with
// default options (the destination pre-faults its memory before it reports ready). Every
// pair runs the configurations in a rotated order, so none always goes first.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/bench/sweep.hpp"

namespace pagewire::bench {

struct QemuBenchOptions {
  std::string image;
  std::string pagewire;                    // the pagewire binary
  std::string qemu = "qemu-system-x86_64";
  int pairs = 3;
  std::vector<unsigned> qemu_channels = {1, 2};
  std::vector<std::string> pagewire_source_args;  // after the defaults, e.g. --policy raw
  std::string memory_directory = "/dev/shm";      // the QEMU destination's RAM file
  std::uint16_t tcp_port = 0;                     // 0: one derived from the pid
};

struct QemuBenchRun {
  std::string configuration;  // "qemu 1 channel", "qemu 2 multifd channels", "pagewire"
  int pair = 0;
  double total_seconds = 0;
  double downtime_ms = 0;
  std::uint64_t wire_bytes = 0;  // QEMU: ram transferred; pagewire: record bytes in frames
};

struct QemuBenchSummary {
  std::string configuration;
  MetricStats total_seconds, downtime_ms, wire_mib;
  int runs = 0, failures = 0;
  std::string last_error;
  // pagewire ÷ this configuration, per pair, medians (QEMU configurations only; 0 if no pair
  // completed both).
  double pagewire_total_ratio = 0, pagewire_downtime_ratio = 0;
};

struct QemuBenchResult {
  std::uint64_t image_bytes = 0;
  std::vector<QemuBenchRun> runs;
  std::vector<QemuBenchSummary> summaries;  // QEMU configurations in the order asked, then pagewire
};

// Finds the QEMU binary; when it is missing and we are root, installs Debian's
// qemu-system-x86 (saying so on `progress`); otherwise an error with the install line.
Status ensure_qemu(const std::string& qemu, std::ostream& progress);

// Runs every pair; a failed run is counted and reported, the others go on. `progress` gets a
// line per run.
Result<QemuBenchResult> run_qemu_bench(const QemuBenchOptions& options, std::ostream& progress);

}  // namespace pagewire::bench
