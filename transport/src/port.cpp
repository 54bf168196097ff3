#include "pagewire/transport/port.hpp"

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <utility>

#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

namespace {

constexpr std::uint32_t kMempoolCache = 256;
constexpr std::uint32_t kBurst = 32;

Error port_error(const PortConfig& config, const std::string& what, int rc) {
  return make_error("port " + config.name + " (" + std::to_string(config.port_id) + "): " + what +
                    " failed: " + rte_strerror(-rc));
}

}  // namespace

Result<Port> Port::open(const PortConfig& config) {
  if (!rte_eth_dev_is_valid_port(config.port_id)) {
    return make_error("port " + std::to_string(config.port_id) + ": no such DPDK port");
  }
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(config.port_id, &info); rc != 0) {
    return port_error(config, "reading device info", rc);
  }
  if (config.queues > info.max_rx_queues || config.queues > info.max_tx_queues) {
    return make_error("port " + config.name + ": " + std::to_string(config.queues) +
                      " streams need as many queue pairs; the device has " +
                      std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)));
  }
  // The device's limit, never more than a jumbo frame; it must still carry the minimum path.
  const auto frame_limit = static_cast<std::uint16_t>(
      std::min<std::uint32_t>(info.max_rx_pktlen - RTE_ETHER_HDR_LEN - RTE_ETHER_CRC_LEN, UINT16_MAX));
  const std::uint16_t mtu = std::min<std::uint16_t>({config.mtu, info.max_mtu, frame_limit, kMaxPathMtu});
  if (mtu < kMinPathMtu) {
    return make_error("port " + config.name + ": MTU " + std::to_string(mtu) +
                      " is below pagewire's minimum of " + std::to_string(kMinPathMtu));
  }

  // Single-segment frames: the data room holds the largest frame the MTU allows, and never
  // less than DPDK's default buffer or what the device asks for (af_packet sizes its RX
  // copies by its ring's frame size, whatever the MTU).
  const auto data_room = static_cast<std::uint16_t>(std::max<std::uint32_t>(
      {static_cast<std::uint32_t>(RTE_PKTMBUF_HEADROOM + RTE_ETHER_HDR_LEN + mtu + RTE_ETHER_CRC_LEN + RTE_VLAN_HLEN),
       RTE_MBUF_DEFAULT_BUF_SIZE, RTE_PKTMBUF_HEADROOM + info.min_rx_bufsize}));
  const std::uint32_t mbufs =
      config.queues * (config.rx_descriptors + config.tx_descriptors + config.held_frames_per_queue +
                       kBurst + kMempoolCache) + 1024;
  const std::string pool_name = "pw_" + std::to_string(config.port_id);
  rte_mempool* pool = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, kMempoolCache, 0, data_room,
                                              static_cast<int>(rte_eth_dev_socket_id(config.port_id) < 0
                                                                   ? SOCKET_ID_ANY
                                                                   : rte_eth_dev_socket_id(config.port_id)));
  if (pool == nullptr) {
    return make_error("port " + config.name + ": cannot create a mempool of " + std::to_string(mbufs) +
                      " mbufs of " + std::to_string(data_room) + " bytes: " + rte_strerror(rte_errno));
  }

  rte_eth_conf conf{};
  conf.rxmode.mtu = mtu;
  constexpr std::uint64_t kTxChecksums = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
  constexpr std::uint64_t kRxChecksums = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
  const bool tx_checksums = (info.tx_offload_capa & kTxChecksums) == kTxChecksums;
  const bool rx_checksums = (info.rx_offload_capa & kRxChecksums) == kRxChecksums;
  if (tx_checksums) conf.txmode.offloads |= kTxChecksums;
  if (rx_checksums) conf.rxmode.offloads |= kRxChecksums;
  if (int rc = rte_eth_dev_configure(config.port_id, config.queues, config.queues, &conf); rc != 0) {
    return port_error(config, "configure with MTU " + std::to_string(mtu) + " (device max_mtu " +
                                  std::to_string(info.max_mtu) + ", max_rx_pktlen " +
                                  std::to_string(info.max_rx_pktlen) + ") and " + std::to_string(config.queues) +
                                  " queue pairs",
                      rc);
  }
  std::uint16_t rxd = config.rx_descriptors;
  std::uint16_t txd = config.tx_descriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(config.port_id, &rxd, &txd); rc != 0) {
    return port_error(config, "adjusting descriptors", rc);
  }
  const int socket = rte_eth_dev_socket_id(config.port_id);
  for (std::uint16_t q = 0; q < config.queues; ++q) {
    if (int rc = rte_eth_rx_queue_setup(config.port_id, q, rxd, static_cast<unsigned>(socket), nullptr, pool);
        rc != 0) {
      return port_error(config, "RX queue " + std::to_string(q) + " setup", rc);
    }
    if (int rc = rte_eth_tx_queue_setup(config.port_id, q, txd, static_cast<unsigned>(socket), nullptr);
        rc != 0) {
      return port_error(config, "TX queue " + std::to_string(q) + " setup", rc);
    }
  }
  if (int rc = rte_eth_dev_set_mtu(config.port_id, mtu); rc != 0 && rc != -ENOTSUP) {
    return port_error(config, "setting MTU " + std::to_string(mtu), rc);
  }
  std::uint16_t accepted = mtu;
  if (rte_eth_dev_get_mtu(config.port_id, &accepted) != 0) accepted = mtu;
  rte_ether_addr mac{};
  rte_eth_macaddr_get(config.port_id, &mac);
  if (rte_is_zero_ether_addr(&mac)) {
    // Some virtual devices (net_ring) come without an address; a zero MAC is not a unicast
    // address anyone can send to, so take a random locally administered one. A device that
    // cannot store it (net_ring again) filters nothing, so frames still carry it.
    rte_eth_random_addr(mac.addr_bytes);
    rte_eth_dev_default_mac_addr_set(config.port_id, &mac);
  }
  if (int rc = rte_eth_dev_start(config.port_id); rc != 0) return port_error(config, "start", rc);
  Port port(config.port_id, config.queues, std::min(accepted, mtu), mac, pool, config.name);
  port.tx_checksum_offload_ = tx_checksums;
  port.rx_checksum_offload_ = rx_checksums;
  return port;
}

Port::Port(Port&& other) noexcept
    : id_(other.id_),
      queues_(other.queues_),
      mtu_(other.mtu_),
      mac_(other.mac_),
      pool_(std::exchange(other.pool_, nullptr)),
      name_(std::move(other.name_)),
      tx_checksum_offload_(other.tx_checksum_offload_),
      rx_checksum_offload_(other.rx_checksum_offload_),
      owned_(std::exchange(other.owned_, false)) {}

Port::~Port() {
  if (!owned_) return;
  rte_eth_dev_stop(id_);
  rte_eth_dev_close(id_);
  rte_mempool_free(pool_);
}

}  // namespace pagewire::transport
