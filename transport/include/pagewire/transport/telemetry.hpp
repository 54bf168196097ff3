// pagewire's sessions in DPDK telemetry, read while they run (dpdk-telemetry.py, or any
// client of /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2):
//   /pagewire/sessions                  ids of the sessions in this process
//   /pagewire/stats[,<session>]         one session (default: the first), streams summed
//   /pagewire/stream,<stream>[,<session>]  one stream
// Counters come from each stream's PublishedCounters, refreshed about every millisecond
// by the stream's own core, so reading them never races the data path. Nothing secret is
// reported: no key, no payload bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pagewire/transport/published_counters.hpp"

namespace pagewire::transport {

struct TelemetryEntry {
  std::uint32_t session = 0;
  std::string role;  // "source" or "destination"
  std::uint16_t path_mtu = 0;
  std::vector<const PublishedCounters*> streams;  // outlive the registration
};

// Lists the session in telemetry for as long as it lives. Control threads only.
class TelemetryRegistration {
 public:
  explicit TelemetryRegistration(TelemetryEntry entry);
  ~TelemetryRegistration();
  TelemetryRegistration(const TelemetryRegistration&) = delete;
  TelemetryRegistration& operator=(const TelemetryRegistration&) = delete;

 private:
  std::uint64_t id_;
};

}  // namespace pagewire::transport
