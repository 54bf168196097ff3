// The port queue a stream (or a session's control channel) sends and receives on, with
// the buffers it builds frames in.
#pragma once

#include <cstdint>

struct rte_mempool;
struct rte_mbuf_ext_shared_info;

namespace pagewire::transport {

class FrameReserve;

// Where a stream's frames get the segments that point at guest memory: buffer-less mbufs,
// and the shared bookkeeping DPDK keeps for external buffers (Port::reference_info()).
struct ReferenceSegments {
  rte_mempool* pool = nullptr;
  rte_mbuf_ext_shared_info* info = nullptr;
  explicit operator bool() const { return pool != nullptr; }
};

struct QueueRef {
  std::uint16_t port;
  std::uint16_t queue;
  rte_mempool* pool;
  ReferenceSegments references{};  // empty: the port cannot send pages by reference
  FrameReserve* reserve = nullptr;  // where the window grows beyond `pool`; null: it does not
};

}  // namespace pagewire::transport
