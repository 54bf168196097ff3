// SourceSession::connect: the handshake (SourceHandshake's steps), then the streams.
#include <rte_cycles.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>

#include "control_channel.hpp"
#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/session.hpp"
#include "session_shared.hpp"
#include "source_handshake.hpp"
#include "window_growth.hpp"


namespace pagewire::transport {

Result<std::unique_ptr<SourceSession>> SourceSession::connect(const SessionConfig& requested, const Port& port,
                                                              const pagecodec::PageMap& memory) {
  if (Status fits = check_memory(memory, requested); !fits) return fits.error();
  SessionConfig offer = requested;
  auto offered = prepare_port(offer, port);
  if (!offered) return offered.error();
  offer.streams = *offered;
  apply_udp_checksum(offer, port, &offer.path);
  SourceHandshake handshake(offer, port);
  if (Status shaken = handshake.run(requested.streams); !shaken) return shaken.error();

  std::unique_ptr<SourceSession> source(new SourceSession());
  const SessionConfig& config = source->config_ = handshake.config();
  if (config.cancel != nullptr) source->cancelled_ = config.cancel;
  source->streams_note_ = fewer_streams_note(requested.streams, config.streams, port);
  source->memory_ = memory;
  source->path_mtu_ = handshake.path_mtu();
  source->control_counters_ = handshake.control_counters();
  source->control_ = handshake.control();
  source->session_ = handshake.session();
  source->crypto_ = handshake.take_crypto();
  source->choose_zero_copy(port);
  if (Status started = source->start_streams(port); !started) return started.error();
  return source;
}

// Pages go by reference (segments pointing into the region) where the port and the session
// allow it; zero_copy_note_ says why not.
void SourceSession::choose_zero_copy(const Port& port) {
  if (!config_.tuning.zero_copy) {
    zero_copy_note_ = "off (tuning)";
  } else if (port.reference_pool() == nullptr) {
    zero_copy_note_ = "unavailable: port " + port.name() + " cannot send segments that point into guest memory (no TX segment chains, or memif in its own zero-copy mode)";
  } else if (config_.security.key.has_value()) {
    zero_copy_note_ = "unavailable: sealed frames are written, not referenced";
  } else if (Status mapped = map_for_dma(port, memory_); !mapped) {
    zero_copy_note_ = "unavailable: " + mapped.error().message;
  } else {
    zero_copy_ = true;
    dma_port_ = &port;
  }
}

// A stream per agreed queue, with its encoder; the stream cores; telemetry.
Status SourceSession::start_streams(const Port& port) {
  round_pages_.resize(config_.streams);
  const bool sealed = config_.security.key.has_value();
  for (std::uint16_t s = 0; s < config_.streams; ++s) {
    pagecodec::EncoderConfig codec{.page_size = config_.page_size,
                                   .region_pages = config_.region_pages,
                                   .delta_cache_bytes = config_.delta_cache_bytes / config_.streams,
                                   .policy = config_.policy};
    auto encoder = pagecodec::Encoder::create(codec);
    if (!encoder) return encoder.error();
    const ReferenceSegments references =
        zero_copy_ ? ReferenceSegments{port.reference_pool(), port.reference_info(s)} : ReferenceSegments{};
    streams_.emplace_back(s, QueueRef{port.id(), s, port.pool(), references, port.frame_reserve(s)}, config_.path,
                          session_, static_cast<std::uint16_t>(payload_for_mtu(path_mtu_, sealed)), config_.tuning,
                          std::move(encoder).value(), crypto(s));
    round_pages_[s].reserve(config_.region_pages / config_.streams + 1);
  }
  rate_cap_per_stream_.store(config_.tuning.rate_bytes_per_second, std::memory_order_relaxed);
  for (SourceStream& stream : streams_) stream.follow_rate_cap(&rate_cap_per_stream_);
  windows_ = std::make_unique<WindowGrowth>(port, config_.streams, config_.tuning.window_memory_bytes);
  auto runner = launch_runner(config_);
  if (!runner) return runner.error();
  runner_ = std::move(runner).value();
  telemetry_ = std::make_unique<TelemetryRegistration>(
      TelemetryEntry{.session = session_, .role = "source", .path_mtu = path_mtu_, .streams = published_of(streams_)});
  return Ok{};
}

}  // namespace pagewire::transport
