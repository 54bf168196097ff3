// The frames one stream may hold beyond its share of the port's pool, grown with its window.
//
// The port's pool is sized for a LAN (PortConfig::held_frames_per_queue per queue). A long
// fat path needs a window of bandwidth x delay — 37 MB for 2 Gbit/s over 150 ms, 190 MB
// for 10 Gbit/s — and most sessions never need it. So a stream that finds no free frame
// asks for more, and the session's control thread adds a pool of the stream's own: as many
// frames as the stream has so far (or more, if it asked for more), up to the session's
// memory bound (StreamTuning::window_memory_bytes). Pools are never created on a stream's
// core: creating one takes locks and system calls.
//
// Threading: alloc() and ask() belong to the stream's core; grow() to the control thread;
// frames(), grown_bytes() and note() from any thread. A pool is published with a release
// store of the count and found with an acquire load; none is removed before the port
// closes, since frames from it may be anywhere (a device's queue, a peer in this process).
#pragma once

#include <rte_mbuf.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "pagewire/result.hpp"

namespace pagewire::transport {

class FrameReserve {
 public:
  static constexpr std::size_t kMaxPools = 12;

  // `base_frames`: the stream's share of the port's pool, the first frames it holds.
  FrameReserve(std::string name, std::uint16_t data_room, int socket, std::uint32_t base_frames);
  ~FrameReserve();
  FrameReserve(const FrameReserve&) = delete;
  FrameReserve& operator=(const FrameReserve&) = delete;

  // A frame from `shared` (the port's pool; null: none) or, when that is empty, from the
  // stream's own pools; nullptr when all are empty (the caller counts it and asks).
  rte_mbuf* alloc(rte_mempool* shared);
  // The stream would hold `frames` frames in all if it could.
  void ask(std::uint32_t frames);

  // Adds a pool when the stream asked for more than it has, keeping what its frames take
  // within `bound_bytes`. Returns whether it did; an error when the memory (hugepages)
  // could not be had, after which it stops trying.
  Result<bool> grow(std::uint64_t bound_bytes);

  std::uint32_t frames() const { return frames_.load(std::memory_order_relaxed); }
  std::uint32_t base_frames() const { return base_frames_; }
  std::uint64_t grown_bytes() const;
  // Frames of `data_room` bytes `bytes` of memory holds, headers included.
  static std::uint32_t frames_in(std::uint64_t bytes, std::uint16_t data_room);

 private:
  std::string name_;
  std::uint16_t data_room_;
  int socket_;
  std::uint32_t base_frames_;
  std::array<rte_mempool*, kMaxPools> pools_{};
  std::atomic<std::uint32_t> published_{0};
  std::atomic<std::uint32_t> asked_{0};
  std::atomic<std::uint32_t> frames_;
  std::uint32_t last_pool_ = 0;  // the stream core's: where the last frame came from
  bool out_of_memory_ = false;   // the control thread's
};

}  // namespace pagewire::transport
