// The CLI's machine-readable output (docs/json.md, checked against
// docs/json-events.schema.json): under --json each event is one JSON object on its own line
// of stdout, and everything meant for people goes to stderr.
#pragma once

#include <array>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <iosfwd>
#include <mutex>
#include <thread>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pagewire/pagecodec/record.hpp"
#include "pagewire/transport/stream_counters.hpp"

namespace pagewire::cli {

// Grows with every incompatible change to an event (a field renamed, removed or retyped).
inline constexpr int kJsonSchemaVersion = 1;

// Prints `fields` as one line with what every event carries: "schema" (kJsonSchemaVersion),
// "event" and "time" (seconds since the Unix epoch, UTC, to the microsecond); flushed, so
// that a reader sees each event as it happens. Any thread: lines never interleave.
void emit_event(std::string_view event, nlohmann::json fields);

// Pages per encoding, by name ("zero", "raw", "delta", "deflate", "copy").
nlohmann::json by_encoding(const std::array<std::uint64_t, pagecodec::kEncodingCount>& counts);

// What the streams' frames did, summed over streams: `sent`, `received`, the repairs, and
// `drops`, every FrameDrop by its counter name (the same as telemetry's drop_*), zeros
// included, so that every frame an end did not take is accounted for.
nlohmann::json frames_json(const transport::StreamCounters& counters);

// Where text for people goes: stdout, or stderr when stdout carries JSON.
std::ostream& text_output(bool json);

// Calls `emit` every `interval_ms` on a thread of its own until destroyed: progress events
// of an end whose own thread is blocked in a library call.
class EventTicker {
 public:
  EventTicker(std::uint32_t interval_ms, std::function<void()> emit);
  ~EventTicker();
  EventTicker(const EventTicker&) = delete;
  EventTicker& operator=(const EventTicker&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace pagewire::cli
