#include "pagewire/transport/telemetry.hpp"

#include <rte_telemetry.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string_view>

namespace pagewire::transport {

namespace {

// The registry: telemetry's thread reads it under the lock; a session leaves it (under the
// same lock) before its streams go away.
struct Registry {
  std::mutex mutex;
  std::map<std::uint64_t, TelemetryEntry> entries;
  std::uint64_t next_id = 1;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

void add_counters(rte_tel_data* d, const StreamSnapshot& s) {
  const StreamCounters& c = s.stream;
  rte_tel_data_add_dict_u64(d, "frames_sent", c.frames_sent);
  rte_tel_data_add_dict_u64(d, "payload_bytes_sent", c.payload_bytes_sent);
  rte_tel_data_add_dict_u64(d, "frames_received", c.frames_received);
  rte_tel_data_add_dict_u64(d, "payload_bytes_received", c.payload_bytes_received);
  rte_tel_data_add_dict_u64(d, "retransmits_timeout", c.retransmits_timeout);
  rte_tel_data_add_dict_u64(d, "retransmits_sack", c.retransmits_sack);
  rte_tel_data_add_dict_u64(d, "tail_probes", c.tail_probes);
  rte_tel_data_add_dict_u64(d, "probes_received", c.probes_received);
  rte_tel_data_add_dict_u64(d, "acks_sent", c.acks_sent);
  rte_tel_data_add_dict_u64(d, "acks_received", c.acks_received);
  rte_tel_data_add_dict_u64(d, "duplicates", c.duplicates);
  rte_tel_data_add_dict_u64(d, "out_of_order", c.out_of_order);
  rte_tel_data_add_dict_u64(d, "applied_ahead", c.applied_ahead);
  rte_tel_data_add_dict_u64(d, "outside_window", c.outside_window);
  rte_tel_data_add_dict_u64(d, "mbuf_exhausted", c.mbuf_exhausted);
  rte_tel_data_add_dict_u64(d, "tx_queue_full", c.tx_queue_full);
  rte_tel_data_add_dict_u64(d, "stale_records", c.stale_records);
  rte_tel_data_add_dict_u64(d, "delta_base_mismatch", c.delta_base_mismatch);
  rte_tel_data_add_dict_u64(d, "copy_source_mismatch", c.copy_source_mismatch);
  rte_tel_data_add_dict_u64(d, "record_errors", c.record_errors);
  rte_tel_data_add_dict_u64(d, "resend_requests", c.resend_requests);
  rte_tel_data_add_dict_u64(d, "pages_resent", c.pages_resent);
  rte_tel_data_add_dict_u64(d, "page_requests", c.page_requests);
  rte_tel_data_add_dict_u64(d, "pages_requested", c.pages_requested);
  rte_tel_data_add_dict_u64(d, "page_requests_refused", c.page_requests_refused);
  rte_tel_data_add_dict_u64(d, "pages_requested_sent", c.pages_requested_sent);
  rte_tel_data_add_dict_u64(d, "black_holes", c.black_holes);
  rte_tel_data_add_dict_u64(d, "path_mtu", c.path_mtu);
  rte_tel_data_add_dict_u64(d, "fragments_sent", c.fragments_sent);
  rte_tel_data_add_dict_u64(d, "pages_by_reference", c.pages_by_reference);
  rte_tel_data_add_dict_u64(d, "fragments_received", c.fragments_received);
  rte_tel_data_add_dict_u64(d, "reassembly_full", c.reassembly_full);
  rte_tel_data_add_dict_u64(d, "srtt_us", c.srtt_us);
  rte_tel_data_add_dict_u64(d, "peer_window", c.peer_window);
  rte_tel_data_add_dict_u64(d, "peak_in_flight", c.peak_in_flight);
  for (int drop = 1; drop < kFrameDropCount; ++drop) {
    // DPDK's telemetry takes names of letters, digits and underscores only.
    const std::string name = "drop_" + std::string(counter_name(static_cast<FrameDrop>(drop)));
    rte_tel_data_add_dict_u64(d, name.c_str(), c.drops[static_cast<std::size_t>(drop)]);
  }
  for (int e = 1; e < pagecodec::kEncodingCount; ++e) {
    const std::string name = "pages_" + std::string(pagecodec::to_string(static_cast<pagecodec::Encoding>(e)));
    rte_tel_data_add_dict_u64(d, name.c_str(), s.pages[static_cast<std::size_t>(e)]);
  }
}

// "<a>[,<b>]" -> numbers; false on anything else.
bool parse_numbers(const char* params, std::vector<std::uint64_t>* out) {
  if (params == nullptr || *params == '\0') return true;
  const char* at = params;
  while (*at != '\0') {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(at, &end, 10);
    if (end == at) return false;
    out->push_back(value);
    at = end;
    if (*at == ',') ++at;
    else if (*at != '\0') return false;
  }
  return true;
}

const TelemetryEntry* find_session(const Registry& r, std::uint64_t session, bool any) {
  for (const auto& [id, entry] : r.entries) {
    if (any || entry.session == session) return &entry;
  }
  return nullptr;
}

int list_sessions(const char*, const char*, rte_tel_data* d) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  rte_tel_data_start_array(d, RTE_TEL_U64_VAL);
  for (const auto& [id, entry] : r.entries) rte_tel_data_add_array_u64(d, entry.session);
  return 0;
}

int session_stats(const char*, const char* params, rte_tel_data* d) {
  std::vector<std::uint64_t> numbers;
  if (!parse_numbers(params, &numbers) || numbers.size() > 1) return -1;
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  const TelemetryEntry* entry = find_session(r, numbers.empty() ? 0 : numbers[0], numbers.empty());
  if (entry == nullptr) return -1;
  StreamSnapshot total;
  for (const PublishedCounters* stream : entry->streams) {
    const StreamSnapshot one = stream->read();
    total.stream += one.stream;
    for (std::size_t e = 0; e < total.pages.size(); ++e) total.pages[e] += one.pages[e];
  }
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_string(d, "role", entry->role.c_str());
  rte_tel_data_add_dict_u64(d, "session", entry->session);
  rte_tel_data_add_dict_u64(d, "path_mtu", entry->path_mtu);
  rte_tel_data_add_dict_u64(d, "streams", entry->streams.size());
  add_counters(d, total);
  return 0;
}

int stream_stats(const char*, const char* params, rte_tel_data* d) {
  std::vector<std::uint64_t> numbers;
  if (!parse_numbers(params, &numbers) || numbers.empty() || numbers.size() > 2) return -1;
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  const TelemetryEntry* entry = find_session(r, numbers.size() == 2 ? numbers[1] : 0, numbers.size() == 1);
  if (entry == nullptr || numbers[0] >= entry->streams.size()) return -1;
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "stream", numbers[0]);
  add_counters(d, entry->streams[numbers[0]]->read());
  return 0;
}

void register_commands() {
  static std::once_flag once;
  std::call_once(once, [] {
    rte_telemetry_register_cmd("/pagewire/sessions", list_sessions, "Returns the ids of pagewire sessions. No parameters");
    rte_telemetry_register_cmd("/pagewire/stats", session_stats,
                               "Returns a pagewire session's counters, streams summed. Parameters: [session id]");
    rte_telemetry_register_cmd("/pagewire/stream", stream_stats,
                               "Returns one pagewire stream's counters. Parameters: stream[,session id]");
  });
}

}  // namespace

TelemetryRegistration::TelemetryRegistration(TelemetryEntry entry) {
  register_commands();
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  id_ = r.next_id++;
  r.entries.emplace(id_, std::move(entry));
}

TelemetryRegistration::~TelemetryRegistration() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.entries.erase(id_);
}

}  // namespace pagewire::transport
