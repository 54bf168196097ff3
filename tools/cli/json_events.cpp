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
  std::cout << fields.dump() << std::endl;
}

nlohmann::json by_encoding(const std::array<std::uint64_t, pagecodec::kEncodingCount>& counts) {
  nlohmann::json named = nlohmann::json::object();
  for (auto encoding : {pagecodec::Encoding::kZero, pagecodec::Encoding::kRaw, pagecodec::Encoding::kDelta,
                        pagecodec::Encoding::kDeflate, pagecodec::Encoding::kCopy}) {
    named[std::string(pagecodec::to_string(encoding))] = counts[static_cast<std::size_t>(encoding)];
  }
  return named;
}

std::ostream& text_output(bool json) { return json ? std::cerr : std::cout; }

}  // namespace pagewire::cli
