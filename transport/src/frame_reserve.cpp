#include "pagewire/transport/frame_reserve.hpp"

#include <rte_errno.h>
#include <rte_mempool.h>

#include <algorithm>

namespace pagewire::transport {

namespace {
// Per-lcore caches would strand frames on cores that never use this stream's pools.
constexpr unsigned kNoCache = 0;
}  // namespace

FrameReserve::FrameReserve(std::string name, std::uint16_t data_room, int socket, std::uint32_t base_frames)
    : name_(std::move(name)), data_room_(data_room), socket_(socket), base_frames_(base_frames), frames_(base_frames) {}

FrameReserve::~FrameReserve() {
  for (rte_mempool* pool : pools_) rte_mempool_free(pool);
}

rte_mbuf* FrameReserve::alloc(rte_mempool* shared) {
  if (shared != nullptr) {
    if (rte_mbuf* mbuf = rte_pktmbuf_alloc(shared)) return mbuf;
  }
  const std::uint32_t pools = published_.load(std::memory_order_acquire);  // pairs with grow()'s release
  for (std::uint32_t tried = 0; tried < pools; ++tried) {
    const std::uint32_t at = (last_pool_ + tried) % pools;
    if (rte_mbuf* mbuf = rte_pktmbuf_alloc(pools_[at])) {
      last_pool_ = at;
      return mbuf;
    }
  }
  return nullptr;
}

void FrameReserve::ask(std::uint32_t frames) {
  if (frames > asked_.load(std::memory_order_relaxed)) asked_.store(frames, std::memory_order_relaxed);
}

Result<bool> FrameReserve::grow(std::uint64_t bound_bytes) {
  const std::uint32_t bound_frames = frames_in(bound_bytes, data_room_);
  const std::uint32_t have = frames_.load(std::memory_order_relaxed);
  const std::uint32_t asked = asked_.load(std::memory_order_relaxed);
  const std::uint32_t pools = published_.load(std::memory_order_relaxed);
  if (out_of_memory_ || asked <= have || have >= bound_frames || pools == kMaxPools) return false;
  // Doubling keeps the number of pools small however far the window grows.
  const std::uint32_t more = std::min(std::max(asked - have, have), bound_frames - have);
  const std::string pool_name = name_ + "g" + std::to_string(pools);
  rte_mempool* pool = rte_pktmbuf_pool_create(pool_name.c_str(), more, kNoCache, 0, data_room_, socket_);
  if (pool == nullptr) {
    out_of_memory_ = true;
    return make_error("cannot add " + std::to_string(more) + " frames of " + std::to_string(data_room_) +
                      " bytes to " + name_ + "'s window (" + rte_strerror(rte_errno) +
                      "): its window stays at " + std::to_string(have) + " frames; reserve more hugepages");
  }
  pools_[pools] = pool;
  published_.store(pools + 1, std::memory_order_release);  // pairs with alloc()'s acquire
  frames_.store(have + more, std::memory_order_relaxed);
  return true;
}

std::uint64_t FrameReserve::grown_bytes() const {
  return std::uint64_t{frames() - base_frames_} * (data_room_ + sizeof(rte_mbuf));
}

std::uint32_t FrameReserve::frames_in(std::uint64_t bytes, std::uint16_t data_room) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(bytes / (data_room + sizeof(rte_mbuf)), UINT32_MAX));
}

}  // namespace pagewire::transport
