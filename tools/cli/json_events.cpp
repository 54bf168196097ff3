#include "json_events.hpp"

#include <chrono>
#include <iostream>
#include <string>

namespace pagewire::cli {

void emit_event(std::string_view event, nlohmann::json fields) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  fields["schema"] = kJsonSchemaVersion;
  fields["event"] = std::string(event);
  fields["time"] = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()) / 1e6;
  const std::string line = fields.dump() + "\n";
  static std::mutex one_line_at_a_time;  // events come from several threads (progress tickers)
  std::lock_guard hold(one_line_at_a_time);
  std::cout << line << std::flush;
}

nlohmann::json by_encoding(const std::array<std::uint64_t, pagecodec::kEncodingCount>& counts) {
  nlohmann::json named = nlohmann::json::object();
  for (auto encoding : {pagecodec::Encoding::kZero, pagecodec::Encoding::kRaw, pagecodec::Encoding::kDelta,
                        pagecodec::Encoding::kDeflate, pagecodec::Encoding::kCopy}) {
    named[std::string(pagecodec::to_string(encoding))] = counts[static_cast<std::size_t>(encoding)];
  }
  return named;
}

nlohmann::json frames_json(const transport::StreamCounters& c) {
  nlohmann::json drops = nlohmann::json::object();
  for (int d = 1; d < transport::kFrameDropCount; ++d) {
    const auto drop = static_cast<transport::FrameDrop>(d);
    drops[std::string(transport::counter_name(drop))] = c.drops[static_cast<std::size_t>(d)];
  }
  return {{"sent", c.frames_sent},
          {"received", c.frames_received},
          {"retransmits_sack", c.retransmits_sack},
          {"retransmits_timeout", c.retransmits_timeout},
          {"tail_probes", c.tail_probes},
          {"duplicates", c.duplicates},
          {"out_of_order", c.out_of_order},
          {"applied_ahead", c.applied_ahead},
          {"outside_window", c.outside_window},
          {"drops", drops}};
}

std::ostream& text_output(bool json) { return json ? std::cerr : std::cout; }

EventTicker::EventTicker(std::uint32_t interval_ms, std::function<void()> emit)
    : thread_([this, interval_ms, emit = std::move(emit)] {
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, std::chrono::milliseconds(interval_ms), [this] { return stop_; })) emit();
      }) {}

EventTicker::~EventTicker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

}  // namespace pagewire::cli
