#include "pagewire/transport/port.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_memory.h>
#include <rte_mbuf.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "device_limits.hpp"
#include "pagewire/transport/frame_reserve.hpp"
#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

namespace {

// rte_eth_dev_start, again every 100 ms for up to `wait_ms` while the device refuses: a
// memif client fails to start until its server listens, and two processes started together
// cannot know which comes first.
int start_waiting(std::uint16_t port_id, std::uint32_t wait_ms) {
  constexpr std::uint32_t kRetryMs = 100;
  int rc = rte_eth_dev_start(port_id);
  for (std::uint32_t waited = 0; rc != 0 && waited < wait_ms; waited += kRetryMs) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kRetryMs));
    rc = rte_eth_dev_start(port_id);
  }
  return rc;
}

constexpr std::uint32_t kMempoolCache = 256;
constexpr std::uint32_t kBurst = 32;

Error port_error(const PortConfig& config, const std::string& what, int rc) {
  return make_error("port " + config.name + " (" + std::to_string(config.port_id) + "): " + what +
                    " failed: " + rte_strerror(-rc));
}

// Once the device is configured, a failure closes it again.
Error device_error(const PortConfig& config, const std::string& what, int rc) {
  return make_error(port_error(config, what, rc).message + "; the port is closed");
}

Result<rte_mempool*> new_pool(const PortConfig& config, const std::string& name, std::uint32_t count,
                              std::uint16_t data_room, int socket) {
  rte_mempool* created = rte_pktmbuf_pool_create(name.c_str(), count, kMempoolCache, 0, data_room, socket);
  if (created == nullptr) {
    return make_error("port " + config.name + ": cannot create a mempool of " + std::to_string(count) +
                      " mbufs of " + std::to_string(data_room) + " bytes: " + rte_strerror(rte_errno));
  }
  return created;
}

constexpr std::uint64_t kTxChecksums = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
constexpr std::uint64_t kRxChecksums = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;

}  // namespace

struct Port::Plan {
  rte_eth_dev_info info{};
  std::uint16_t mtu = 0;               // the largest IP packet the port takes
  std::uint16_t configurable_mtu = 0;  // the most ethdev lets us set (the device's report)
  std::uint32_t frame_room = 0;        // bytes of the largest frame
  std::uint16_t frame_data_room = 0;   // of a buffer we build frames in
  bool scatter = false;                // received frames span several small buffers
  bool tx_chains = false;              // the device sends segment chains
  bool references = false;             // pages may go by reference (zero-copy)
  bool tx_checksums = false;
  bool rx_checksums = false;
  int pool_socket = SOCKET_ID_ANY;
};

Port::Port(std::uint16_t id, std::uint16_t queues, std::string name) : id_(id), queues_(queues), name_(std::move(name)) {}

Result<Port> Port::open(const PortConfig& requested) {
  PortConfig config = requested;
  auto plan = Port::plan(&config);
  if (!plan) return plan.error();
  Port port(config.port_id, config.queues, config.name);
  if (Status pools = port.create_pools(config, *plan); !pools) return pools.error();
  if (Status pool = port.create_reference_pool(config, *plan); !pool) return pool.error();
  if (Status configured = port.configure_device(config, *plan); !configured) return configured.error();
  if (Status started = port.start_device(config, *plan); !started) return started.error();
  return port;
}

// The queues, MTU and buffers the device allows for what `config` asks (queues lowered to
// the device's); an error names what it cannot do.
Result<Port::Plan> Port::plan(PortConfig* config) {
  if (!rte_eth_dev_is_valid_port(config->port_id)) {
    return make_error("port " + std::to_string(config->port_id) + ": no such DPDK port");
  }
  Plan plan;
  const rte_eth_dev_info& info = plan.info;
  if (int rc = rte_eth_dev_info_get(config->port_id, &plan.info); rc != 0) {
    return port_error(*config, "reading device info", rc);
  }
  // Fewer queue pairs than asked for: fewer streams (the session says so), not a refusal.
  config->queues = std::min({config->queues, info.max_rx_queues, info.max_tx_queues});
  if (config->queues == 0) return make_error("port " + config->name + ": the device has no queue pair to use");
  // The device's limit, never more than a jumbo frame; it must still carry the minimum path.
  plan.configurable_mtu = device_limits::reported_mtu(info);
  plan.mtu = std::min<std::uint16_t>({config->mtu, device_limits::device_mtu(info), kMaxPathMtu});
  if (plan.mtu < kMinPathMtu) {
    return make_error("port " + config->name + ": MTU " + std::to_string(plan.mtu) +
                      " is below pagewire's minimum of " + std::to_string(kMinPathMtu));
  }
  // By default one buffer per frame: the data room holds the largest frame the MTU allows,
  // and never less than DPDK's default buffer or what the device asks for (af_packet sizes
  // its RX copies by its ring's frame size, whatever the MTU).
  plan.frame_room = RTE_ETHER_HDR_LEN + plan.mtu + RTE_ETHER_CRC_LEN + RTE_VLAN_HLEN;
  if (config->buffer_bytes != 0 && config->buffer_bytes < kMinBufferBytes) {
    return make_error("port " + config->name + ": buffers of " + std::to_string(config->buffer_bytes) +
                      " bytes: expected 0 (one frame per buffer) or at least " + std::to_string(kMinBufferBytes));
  }
  plan.scatter = config->buffer_bytes != 0 && config->buffer_bytes < plan.frame_room;
  if (plan.scatter && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) == 0) {
    return make_error("port " + config->name + ": buffers of " + std::to_string(config->buffer_bytes) +
                      " bytes cannot hold a frame at MTU " + std::to_string(plan.mtu) +
                      " and the device cannot scatter frames over several (no RX scatter): use larger buffers");
  }
  plan.frame_data_room = static_cast<std::uint16_t>(std::max<std::uint32_t>(
      {RTE_PKTMBUF_HEADROOM + plan.frame_room, RTE_MBUF_DEFAULT_BUF_SIZE,
       RTE_PKTMBUF_HEADROOM + device_limits::receive_buffer_bytes(info)}));
  plan.tx_chains = (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) != 0;
  // memif's own zero-copy client hands the peer offsets into EAL memory it registered: a
  // segment pointing at guest memory would reach the server as a descriptor outside every
  // region (its receive path then reads wild memory). Such a port copies pages into frames.
  plan.references = config->zero_copy && plan.tx_chains && !device_limits::memif_zero_copy(info);
  plan.tx_checksums = (info.tx_offload_capa & kTxChecksums) == kTxChecksums;
  plan.rx_checksums = (info.rx_offload_capa & kRxChecksums) == kRxChecksums;
  const int socket = rte_eth_dev_socket_id(config->port_id);
  plan.pool_socket = socket < 0 ? SOCKET_ID_ANY : socket;
  return plan;
}

// Frames we build are one buffer each (a chain only when pages go by reference), so the
// pool they come from always holds the largest frame; with scatter, received frames go to
// a second pool of small buffers. Each queue's window grows into a reserve of its own.
Status Port::create_pools(const PortConfig& config, const Plan& plan) {
  const std::uint32_t mbufs =
      config.queues * (config.rx_descriptors + config.tx_descriptors + config.held_frames_per_queue +
                       kBurst + kMempoolCache) + 1024;
  auto frame_pool = new_pool(config, "pw_" + std::to_string(config.port_id), mbufs, plan.frame_data_room, plan.pool_socket);
  if (!frame_pool) return frame_pool.error();
  pool_.reset(*frame_pool);
  if (plan.scatter) {
    // Received frames, in order or held, each over as many buffers as it takes.
    const std::uint32_t per_frame = (plan.frame_room + config.buffer_bytes - 1) / config.buffer_bytes;
    const std::uint32_t scattered =
        config.queues * (config.rx_descriptors + config.held_frames_per_queue + kBurst + kMempoolCache) * per_frame + 1024;
    auto small_pool = new_pool(config, "pw_rx_" + std::to_string(config.port_id), scattered,
                               static_cast<std::uint16_t>(RTE_PKTMBUF_HEADROOM + config.buffer_bytes), plan.pool_socket);
    if (!small_pool) return small_pool.error();
    rx_pool_.reset(*small_pool);
  }
  for (std::uint16_t q = 0; q < config.queues; ++q) {
    reserves_.push_back(std::make_unique<FrameReserve>("pw" + std::to_string(config.port_id) + "q" + std::to_string(q),
                                                       plan.frame_data_room, plan.pool_socket,
                                                       config.held_frames_per_queue));
  }
  return Ok{};
}

// Buffer-less mbufs: each points at a guest page or at a record header in a frame's first
// buffer. Up to two per page of every frame a queue holds or has queued.
Status Port::create_reference_pool(const PortConfig& config, const Plan& plan) {
  if (!plan.references) return Ok{};
  const std::uint32_t references =
      config.queues * 2 * (config.tx_descriptors + config.held_frames_per_queue + kBurst + kMempoolCache) + 1024;
  auto references_pool = new_pool(config, "pw_ref_" + std::to_string(config.port_id), references, 0, plan.pool_socket);
  if (!references_pool) return references_pool.error();
  reference_pool_.reset(*references_pool);
  reference_info_ = std::make_unique<QueueReferenceInfo[]>(config.queues);
  for (std::uint16_t q = 0; q < config.queues; ++q) {
    // Guest memory is not ours to free: the callback does nothing. The port's own
    // reference keeps the count above 1 while frames come and go, so that DPDK's
    // non-atomic shortcut for a count of 1 never races a core freeing a frame.
    rte_mbuf_ext_shared_info& info = reference_info_[q].info;
    info.free_cb = [](void*, void*) {};
    info.fcb_opaque = nullptr;
    rte_mbuf_ext_refcnt_set(&info, 1);
  }
  return Ok{};
}

// Offloads the device has, the queues and the MTU.
Status Port::configure_device(const PortConfig& config, const Plan& plan) {
  rte_eth_conf conf{};
  conf.rxmode.mtu = std::min(plan.mtu, plan.configurable_mtu);  // ethdev refuses more than the device reports
  if (plan.tx_checksums) conf.txmode.offloads |= kTxChecksums;
  if (plan.rx_checksums) conf.rxmode.offloads |= kRxChecksums;
  if (plan.scatter) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
  if (plan.tx_chains) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  if (int rc = rte_eth_dev_configure(config.port_id, config.queues, config.queues, &conf); rc != 0) {
    return port_error(config, "configure with MTU " + std::to_string(plan.mtu) + " (device max_mtu " +
                                  std::to_string(plan.info.max_mtu) + ", max_rx_pktlen " +
                                  std::to_string(plan.info.max_rx_pktlen) + ") and " + std::to_string(config.queues) +
                                  " queue pairs",
                      rc);
  }
  // From here on a failure closes the device (~Port), which releases its queues' mbufs
  // before the pools they came from are freed.
  device_configured_ = true;
  if (Status queues = setup_queues(config); !queues) return queues;
  if (!device_limits::leave_mtu_alone(plan.info)) {
    if (int rc = rte_eth_dev_set_mtu(config.port_id, conf.rxmode.mtu); rc != 0 && rc != -ENOTSUP) {
      return device_error(config, "setting MTU " + std::to_string(conf.rxmode.mtu), rc);
    }
  }
  std::uint16_t accepted = plan.mtu;
  if (rte_eth_dev_get_mtu(config.port_id, &accepted) != 0) accepted = plan.mtu;
  mtu_ = plan.mtu > plan.configurable_mtu ? plan.mtu : std::min(accepted, plan.mtu);  // beyond the report: device_mtu() knows
  return Ok{};
}

Status Port::setup_queues(const PortConfig& config) {
  std::uint16_t rxd = config.rx_descriptors;
  std::uint16_t txd = config.tx_descriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(config.port_id, &rxd, &txd); rc != 0) {
    return device_error(config, "adjusting descriptors", rc);
  }
  const int socket = rte_eth_dev_socket_id(config.port_id);
  rte_mempool* rx_pool = rx_pool_ ? rx_pool_.get() : pool_.get();
  for (std::uint16_t q = 0; q < config.queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(config.port_id, q, rxd, static_cast<unsigned>(socket), nullptr, rx_pool);
        rc != 0) {
      return device_error(config, "RX queue " + std::to_string(q) + " setup", rc);
    }
    if (int rc = rte_eth_tx_queue_setup(config.port_id, q, txd, static_cast<unsigned>(socket), nullptr); rc != 0) {
      return device_error(config, "TX queue " + std::to_string(q) + " setup", rc);
    }
  }
  return Ok{};
}

// Our address (a random locally administered one where the device has none), then the
// device started, and what it turned out to be.
Status Port::start_device(const PortConfig& config, const Plan& plan) {
  rte_eth_macaddr_get(config.port_id, &mac_);
  if (rte_is_zero_ether_addr(&mac_)) {
    // Some virtual devices (net_ring) come without an address; a zero MAC is not a unicast
    // address anyone can send to, so take a random locally administered one. A device that
    // cannot store it (net_ring again) filters nothing, so frames still carry it.
    rte_eth_random_addr(mac_.addr_bytes);
    rte_eth_dev_default_mac_addr_set(config.port_id, &mac_);
  }
  if (int rc = start_waiting(config.port_id, config.start_wait_ms); rc != 0) {
    // A memif client is refused until its server listens: say what was waited for.
    const std::string waited = config.start_wait_ms > 0 ? " (tried for " + std::to_string(config.start_wait_ms) +
                                                              " ms: is the peer's port started? a memif client needs "
                                                              "its server up first; --timeout-s waits longer)"
                                                        : "";
    return device_error(config, "start" + waited, rc);
  }
  tx_checksum_offload_ = plan.tx_checksums;
  rx_checksum_offload_ = plan.rx_checksums;
  rx_scatter_ = plan.scatter;
  const std::string driver = plan.info.driver_name != nullptr ? plan.info.driver_name : "";
  paired_queues_ = driver == "net_ring" || driver == "net_memif";
  relinks_by_restart_ = device_limits::memif_client(plan.info);
  virtual_device_ = plan.info.device != nullptr && std::string(rte_bus_name(rte_dev_bus(plan.info.device))) == "vdev";
  return Ok{};
}

Status Port::steer_streams(const Endpoint& local, std::uint16_t streams) const {
  if (streams <= 1 || paired_queues_) return Ok{};
  rte_flow_error error{};
  rte_flow_flush(id_, &error);  // an earlier session's rules
  const rte_flow_attr attributes{.group = 0, .priority = 0, .ingress = 1, .egress = 0, .transfer = 0, .reserved = 0};
  rte_flow_item_vlan vlan{}, vlan_mask{};
  vlan.hdr.vlan_tci = rte_cpu_to_be_16(local.vlan);
  vlan_mask.hdr.vlan_tci = rte_cpu_to_be_16(0x0fff);
  rte_flow_item_ipv4 ip{}, ip_mask{};
  ip.hdr.dst_addr = rte_cpu_to_be_32(local.ip);
  ip_mask.hdr.dst_addr = UINT32_MAX;
  rte_flow_item_udp udp{}, udp_mask{};
  udp_mask.hdr.dst_port = UINT16_MAX;
  // Tagged frames are matched on their VLAN too: a NIC parses the tag before the IP header.
  std::vector<rte_flow_item> pattern = {{RTE_FLOW_ITEM_TYPE_ETH, nullptr, nullptr, nullptr}};
  if (local.vlan != 0) pattern.push_back({RTE_FLOW_ITEM_TYPE_VLAN, &vlan, nullptr, &vlan_mask});
  pattern.push_back({RTE_FLOW_ITEM_TYPE_IPV4, &ip, nullptr, &ip_mask});
  pattern.push_back({RTE_FLOW_ITEM_TYPE_UDP, &udp, nullptr, &udp_mask});
  pattern.push_back({RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr});
  rte_flow_action_queue queue{};
  const rte_flow_action actions[] = {{RTE_FLOW_ACTION_TYPE_QUEUE, &queue}, {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  for (std::uint16_t s = 0; s < streams; ++s) {
    udp.hdr.dst_port = rte_cpu_to_be_16(static_cast<std::uint16_t>(local.udp_port + s));
    queue.index = s;
    error = rte_flow_error{};
    if (rte_flow_create(id_, &attributes, pattern.data(), actions, &error) == nullptr) {
      rte_flow_flush(id_, &error);
      return make_error("port " + name_ + ": cannot steer stream " + std::to_string(s) + " (UDP port " +
                        std::to_string(local.udp_port + s) + ") to its queue " + std::to_string(s) + ": " +
                        (error.message != nullptr ? error.message : rte_strerror(rte_errno)) +
                        ". This device spreads frames over queues by its own hash, so more than one stream needs "
                        "flow rules (rte_flow): use --streams 1, or a NIC that offers them");
    }
  }
  return Ok{};
}

Status Port::map_for_dma(const void* start, std::size_t bytes) const {
  if (virtual_device_) return Ok{};
  if (rte_eal_iova_mode() != RTE_IOVA_VA) {
    return make_error("port " + name_ + ": the device DMAs and EAL runs with physical IOVAs: frames cannot point at "
                      "guest memory (bind the NIC to vfio-pci with an IOMMU for IOVA-as-VA)");
  }
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  auto* address = const_cast<void*>(start);
  const std::size_t length = (bytes + page - 1) / page * page;
  if (rte_extmem_register(address, length, nullptr, 0, page) != 0 && rte_errno != EEXIST) {
    return make_error("port " + name_ + ": registering the guest region with DPDK failed: " + rte_strerror(rte_errno));
  }
  rte_eth_dev_info info{};
  rte_eth_dev_info_get(id_, &info);
  if (rte_dev_dma_map(info.device, address, reinterpret_cast<std::uintptr_t>(address), length) != 0 &&
      rte_errno != ENOTSUP) {
    const std::string why = rte_strerror(rte_errno);
    rte_extmem_unregister(address, length);
    return make_error("port " + name_ + ": mapping the guest region for the device's DMA failed: " + why);
  }
  return Ok{};
}

void Port::unmap_for_dma(const void* start, std::size_t bytes) const {
  if (virtual_device_) return;
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  auto* address = const_cast<void*>(start);
  const std::size_t length = (bytes + page - 1) / page * page;
  rte_eth_dev_info info{};
  rte_eth_dev_info_get(id_, &info);
  rte_dev_dma_unmap(info.device, address, reinterpret_cast<std::uintptr_t>(address), length);
  rte_extmem_unregister(address, length);
}

Port::Port(Port&& other) noexcept
    : id_(other.id_),
      queues_(other.queues_),
      mtu_(other.mtu_),
      mac_(other.mac_),
      pool_(std::move(other.pool_)),
      name_(std::move(other.name_)),
      tx_checksum_offload_(other.tx_checksum_offload_),
      rx_checksum_offload_(other.rx_checksum_offload_),
      rx_scatter_(other.rx_scatter_),
      virtual_device_(other.virtual_device_),
      paired_queues_(other.paired_queues_),
      relinks_by_restart_(other.relinks_by_restart_),
      rx_pool_(std::move(other.rx_pool_)),
      reference_pool_(std::move(other.reference_pool_)),
      reference_info_(std::move(other.reference_info_)),
      reserves_(std::move(other.reserves_)),
      device_configured_(std::exchange(other.device_configured_, false)) {}

Port::~Port() {
  if (!device_configured_) return;  // the pools, if any, go with their handles
  rte_flow_error error{};
  if (queues_ > 1 && !paired_queues_) rte_flow_flush(id_, &error);
  rte_eth_dev_stop(id_);
  rte_eth_dev_close(id_);
}

Status Port::await_link(std::uint32_t timeout_ms, const StopReason* cancel) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto relink_at = Clock::now() + std::chrono::milliseconds(kRelinkMs);
  for (;;) {
    rte_eth_link link{};
    rte_eth_link_get_nowait(id_, &link);
    if (link.link_status == RTE_ETH_LINK_UP) return Ok{};
    if (cancel != nullptr && cancel->is_set()) return make_error(ErrorCode::kCancelled, "cancelled: " + cancel->reason());
    const auto now = Clock::now();
    if (now >= deadline) break;
    if (relinks_by_restart_ && now >= relink_at) {
      rte_eth_dev_stop(id_);
      start_waiting(id_, static_cast<std::uint32_t>(
                             std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()));
      relink_at = Clock::now() + std::chrono::milliseconds(kRelinkMs);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Sessions settle on the smaller stream count, but a memif link pairs its rings itself and
  // drops a peer with another count ("Invalid ring index" in its debug log).
  rte_eth_dev_info info{};
  const bool memif = rte_eth_dev_info_get(id_, &info) == 0 && info.driver_name != nullptr &&
                     std::string_view(info.driver_name) == "net_memif";
  return make_error("port " + name_ + ": link did not come up within " + std::to_string(timeout_ms / 1000) + " s" +
                    (memif ? " (a memif link comes up only between ends with the same --streams)" : ""));
}

}  // namespace pagewire::transport
