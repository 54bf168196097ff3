// One DPDK port set up for pagewire: one RX/TX queue pair per stream, the MTU the device
// really accepted, and a mempool sized from the queue layout.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pagewire/result.hpp"
#include "pagewire/transport/path.hpp"
#include "pagewire/transport/stop_reason.hpp"

namespace pagewire::transport {

class FrameReserve;

// The smallest PortConfig::buffer_bytes: every header and any control frame's payload fit
// in a frame's first buffer.
inline constexpr std::uint16_t kMinBufferBytes = 1024;

struct PortConfig {
  std::uint16_t port_id = 0;
  std::uint16_t queues = 1;            // one RX/TX pair per stream; fewer where the device has fewer
  std::uint16_t mtu = 9000;            // requested; the device may accept less
  std::uint16_t rx_descriptors = 1024;
  std::uint16_t tx_descriptors = 1024;
  std::uint32_t held_frames_per_queue = 4096;  // sent-unacked or out-of-order frames a stream keeps
  // Data room of each mbuf. 0: one buffer holds the largest frame. Less (at least
  // kMinBufferBytes): received frames are scattered over chains of buffers (RX scatter,
  // which the device must offer), for PMDs that take no larger buffers or to spend less
  // memory on small frames.
  std::uint16_t buffer_bytes = 0;
  // Make the segments that let frames carry guest pages by reference (zero-copy TX;
  // zero_copy_frame.hpp). Only where the device sends chains (TX multi-segment offload).
  bool zero_copy = true;
  // A device that cannot start until its peer is there (a memif client before its server
  // listens) is started again every 100 ms for this long; 0: the first refusal is final.
  std::uint32_t start_wait_ms = 0;
  std::string name;                    // for messages and the mempool name
};

// A vdev string with the buffer sizes its driver needs for jumbo frames, where it leaves them
// small: memif gets bsize=9216 (9000-byte frames); af_packet gets a ring frame size that holds
// a frame of its interface's MTU. A vdev that sizes them itself, or any other, is unchanged.
// Two ends that both use it agree.
std::string sized_for_jumbo_frames(const std::string& vdev);

class Port {
 public:
  // Configures and starts the port. The message names the port and what it refused. A
  // failure to allocate leaves the device as it was; one the device reports after it was
  // configured (queue setup, MTU, start) closes it, and the message says so. Nothing is
  // left allocated either way.
  static Result<Port> open(const PortConfig& config);

  Port(Port&& other) noexcept;
  Port& operator=(Port&&) = delete;
  ~Port();

  std::uint16_t id() const { return id_; }
  std::uint16_t queues() const { return queues_; }  // what the device gave: at most PortConfig::queues
  std::uint16_t mtu() const { return mtu_; }  // what the device accepted, read back
  const rte_ether_addr& mac() const { return mac_; }
  // Buffers that hold a whole frame: what streams build frames in.
  rte_mempool* pool() const { return pool_.get(); }
  // Queue q's frames beyond its share of pool(): what a long path's window grows into.
  FrameReserve* frame_reserve(std::uint16_t queue) const { return reserves_[queue].get(); }
  const std::string& name() const { return name_; }
  // The device computes IPv4 and UDP checksums of frames it sends (then Path's
  // tx_checksum_offload may be set), and checks those of frames it receives (reported in
  // each mbuf's flags, which parse_frame reads). Enabled whenever the device offers them.
  bool tx_checksum_offload() const { return tx_checksum_offload_; }
  bool rx_checksum_offload() const { return rx_checksum_offload_; }
  // Frames cross shared memory only (net_ring, net_memif): nothing on the way can corrupt
  // them, so a checksum over each would protect nothing (SessionConfig::udp_checksum).
  bool memory_link() const { return paired_queues_; }
  // Waits up to `timeout_ms` for the link to come up, sleeping between looks (a peer may take
  // seconds to start, and may share our CPU). A memif client whose link stays down for
  // kRelinkMs is stopped and started again, which reconnects it: DPDK 22.11's memif server
  // takes a connection that arrives while it is still being set up (between its probe and its
  // start) and then never completes it, so a client that came first could wait forever. The
  // error names the port, and for memif the usual cause. kCancelled once `cancel` (if given)
  // is set.
  Status await_link(std::uint32_t timeout_ms, const StopReason* cancel = nullptr);
  static constexpr std::uint32_t kRelinkMs = 2000;
  // Received frames may come as chains of buffers (PortConfig::buffer_bytes).
  bool rx_scatter() const { return rx_scatter_; }
  // Frames may point at guest memory: the device sends chains, and the port has the
  // segments for it. Null pool when not.
  rte_mempool* reference_pool() const { return reference_pool_.get(); }
  // Sends what arrives for stream s (IPv4 to local.ip, UDP to local.udp_port + s, on
  // local.vlan) to RX queue s, for `streams` streams: each stream's core must see its own frames. Nothing to
  // do for one stream, or for a device whose queues are paired end to end (net_ring,
  // net_memif); anything else (a NIC, net_tap, af_packet) spreads frames by its own hash,
  // so each stream gets a flow rule (rte_flow). The message says which rule the device
  // refused and what to do instead. Rules are replaced at each call, removed with the port.
  Status steer_streams(const Endpoint& local, std::uint16_t streams) const;
  // Lets frames point at `bytes` of memory from `start` (a guest region): nothing to do for
  // a virtual device, which reads with the CPU; a device that DMAs needs IOVA-as-VA (VFIO
  // with an IOMMU) and the region registered and mapped for it. The message says why not.
  Status map_for_dma(const void* start, std::size_t bytes) const;
  void unmap_for_dma(const void* start, std::size_t bytes) const;
  // The bookkeeping of queue q's references to guest memory (one per queue: no two cores
  // share its count).
  rte_mbuf_ext_shared_info* reference_info(std::uint16_t queue) const { return &reference_info_[queue].info; }

 private:
  struct MempoolFree {
    void operator()(rte_mempool* pool) const { rte_mempool_free(pool); }
  };
  using Mempool = std::unique_ptr<rte_mempool, MempoolFree>;

  Port(std::uint16_t id, std::uint16_t queues, std::string name);
  struct Plan;  // what open() settles from the request and the device before touching it
  // The steps of open(), in order. The pools come before the device is touched, so that
  // running out of memory leaves it as it was; after configure_device() a failure closes it
  // (~Port).
  static Result<Plan> plan(PortConfig* config);
  Status create_pools(const PortConfig& config, const Plan& plan);
  Status create_reference_pool(const PortConfig& config, const Plan& plan);
  Status configure_device(const PortConfig& config, const Plan& plan);
  Status setup_queues(const PortConfig& config);
  Status start_device(const PortConfig& config, const Plan& plan);

  std::uint16_t id_;
  std::uint16_t queues_;
  std::uint16_t mtu_ = 0;
  rte_ether_addr mac_{};
  Mempool pool_;
  std::string name_;
  bool tx_checksum_offload_ = false;
  bool rx_checksum_offload_ = false;
  bool rx_scatter_ = false;
  bool virtual_device_ = false;  // on the vdev bus: no DMA
  bool paired_queues_ = false;   // queue q reaches the peer's queue q, in memory (net_ring, net_memif)
  bool relinks_by_restart_ = false;  // a memif client: restarting reconnects it
  Mempool rx_pool_;  // scattered receive buffers; null: pool_ receives too
  Mempool reference_pool_;
  // A cache line each: every frame that points at guest memory updates its queue's count.
  struct alignas(RTE_CACHE_LINE_SIZE) QueueReferenceInfo {
    rte_mbuf_ext_shared_info info;
  };
  std::unique_ptr<QueueReferenceInfo[]> reference_info_;
  std::vector<std::unique_ptr<FrameReserve>> reserves_;  // one per queue
  // The device was configured by this object, which stops and closes it before its pools
  // go (the device's queues hold their mbufs until then).
  bool device_configured_ = false;
};

}  // namespace pagewire::transport
