// How a session's streams behave: windows, ACK pacing, timers, congestion control, rate
// caps, black-hole detection and zero-copy. Part of SessionConfig.
#pragma once

#include <cstdint>

namespace pagewire::transport {

struct StreamTuning {
  // Frames in flight and not yet known to have arrived (RFC 6675's "pipe"). 0: chosen by
  // the path — kUncontrolledWindowFrames where congestion control is off (a LAN, a memory
  // link), else about two bandwidth-delay products as the pacing controller measures them,
  // up to what window_memory_bytes holds. Set: a cap in either case.
  std::uint32_t window_frames = 0;
  static constexpr std::uint32_t kUncontrolledWindowFrames = 1024;
  // Frames a receiver holds beyond its cumulative ACK, a power of two; larger than the
  // window, so the sender keeps sending while a hole is being repaired. 0: what
  // window_memory_bytes holds (window_slots()).
  std::uint32_t receive_window_frames = 0;
  // The memory one stream's window may take at each end: frames sent and not yet
  // acknowledged at the source, frames held out of order at the destination. Frames beyond
  // the port's pool are added as the window grows (FrameReserve), never up front; 256 MiB
  // covers 10 Gbit/s per stream over a 150 ms round trip.
  std::uint64_t window_memory_bytes = std::uint64_t{256} << 20;
  std::uint32_t ack_every = 8;         // in-order frames per ACK (out-of-order: at once)
  std::uint32_t ack_delay_us = 100;    // a pending ACK goes out after this long
  std::uint32_t initial_rto_us = 20000;
  std::uint32_t min_rto_us = 10000;  // SACK finds losses; the timer is for tail losses only
  std::uint32_t max_rto_us = 1000000;
  std::uint16_t burst = 32;
  double rate_bytes_per_second = 0;    // 0: unlimited; else a token bucket (QEMU's max-bandwidth)
  // Congestion control (pacing_controller.hpp): pace at the path's measured bottleneck rate
  // and keep about two bandwidth-delay products in flight. Off: only the windows and
  // rate_bytes_per_second limit the sender, as on a link of its own, where the model's
  // small window costs throughput (docs/benchmarks.md). Auto: on when the session crosses a
  // router or its handshake took more than 1 ms (a shared or long path), off on a LAN and
  // on a memory link (net_ring, memif), which nothing else shares.
  enum class CongestionControl : std::uint8_t { kAuto, kOn, kOff };
  CongestionControl congestion_control = CongestionControl::kAuto;
  std::uint32_t initial_rtt_us = 100;  // the handshake's RTT, set by the session
  // Black-hole detection (RFC 8899): after this many retransmission timeouts in a row
  // without progress, a stream probes whether small frames still pass; if they do, the
  // path's MTU fell, and the stream searches for the new one and cuts what it holds into
  // parts that fit. It looks for a larger MTU again after mtu_raise_interval_ms.
  std::uint32_t black_hole_timeouts = 2;
  std::uint32_t mtu_raise_interval_ms = 10000;
  // Zero-copy: in rounds whose pages the guest cannot write (SourceSession::begin_round),
  // RAW pages go from guest memory by reference where the port can send them so
  // (zero_copy_frame.hpp). Off: always copied into frames.
  bool zero_copy = true;
};

}  // namespace pagewire::transport
