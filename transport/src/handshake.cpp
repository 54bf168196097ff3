#include "pagewire/transport/handshake.hpp"

#include <algorithm>

namespace pagewire::transport {

namespace {

constexpr std::uint32_t kAllEncodings = (1u << static_cast<int>(pagecodec::Encoding::kZero)) |
                                        (1u << static_cast<int>(pagecodec::Encoding::kRaw)) |
                                        (1u << static_cast<int>(pagecodec::Encoding::kDelta)) |
                                        (1u << static_cast<int>(pagecodec::Encoding::kDeflate));

}  // namespace

std::size_t max_record_bytes(const SessionConfig& config) {
  const std::size_t batch = std::size_t{config.policy.deflate_batch_pages} * config.page_size;
  return pagecodec::kRecordHeaderBytes + std::max(batch, 2 * std::size_t{config.page_size});
}

HelloPayload make_hello(const SessionConfig& config, std::uint16_t mtu) {
  HelloPayload hello{};
  hello.version.set(kProtocolVersion);
  hello.page_size.set(config.page_size);
  hello.region_pages.set(config.region_pages);
  hello.streams.set(config.streams);
  hello.mtu.set(mtu);
  hello.encodings.set(kAllEncodings);
  hello.max_record_bytes.set(static_cast<std::uint32_t>(max_record_bytes(config)));
  return hello;
}

std::optional<Refusal> check_hello(const HelloPayload& hello, const SessionConfig& config) {
  if (hello.version.get() != kProtocolVersion) {
    return Refusal{RefuseReason::kVersion, "protocol version " + std::to_string(hello.version.get()) +
                                               " != destination's " + std::to_string(kProtocolVersion)};
  }
  if (hello.mtu.get() < kMinPathMtu || hello.mtu.get() > kMaxPathMtu) {
    return Refusal{RefuseReason::kMtu, "source MTU " + std::to_string(hello.mtu.get()) + ": expected " +
                                               std::to_string(kMinPathMtu) + ".." + std::to_string(kMaxPathMtu)};
  }
  if (hello.page_size.get() != config.page_size) {
    return Refusal{RefuseReason::kPageSize, "page size " + std::to_string(hello.page_size.get()) +
                                                " != destination's " + std::to_string(config.page_size)};
  }
  if (hello.region_pages.get() > config.region_pages) {
    return Refusal{RefuseReason::kRegionTooSmall,
                   "source region of " + std::to_string(hello.region_pages.get()) +
                       " pages > destination region of " + std::to_string(config.region_pages) + " pages"};
  }
  if (hello.streams.get() != config.streams) {
    return Refusal{RefuseReason::kStreams, std::to_string(hello.streams.get()) + " streams != destination's " +
                                               std::to_string(config.streams)};
  }
  if ((hello.encodings.get() & ~kAllEncodings) != 0) {
    return Refusal{RefuseReason::kEncodings, "source uses encodings the destination cannot decode"};
  }
  if (hello.max_record_bytes.get() > max_record_bytes(config)) {
    return Refusal{RefuseReason::kEncodings, "source records of up to " + std::to_string(hello.max_record_bytes.get()) +
                                                 " bytes > destination's " + std::to_string(max_record_bytes(config)) +
                                                 " (deflate batch too large)"};
  }
  return std::nullopt;
}

Result<std::uint16_t> path_mtu_ceiling(const HelloPayload& answer, std::uint16_t port_mtu) {
  // Below the minimum an MTU would leave no room for a frame's headers (payload_for_mtu
  // would underflow).
  if (answer.mtu.get() < kMinPathMtu || answer.mtu.get() > kMaxPathMtu) {
    return make_error("the destination advertises MTU " + std::to_string(answer.mtu.get()) + ": expected " +
                      std::to_string(kMinPathMtu) + ".." + std::to_string(kMaxPathMtu));
  }
  return std::min(port_mtu, answer.mtu.get());
}

std::string refusal_message(const RefusePayload& refusal) {
  std::string message;
  for (char c : refusal.message) {
    if (c == '\0' || message.size() == sizeof refusal.message - 1) break;
    message += c >= 0x20 && c < 0x7f ? c : '?';
  }
  return message;
}

}  // namespace pagewire::transport
