// One end of a two-process migration over a DPDK vdev (memif, af_packet; any port works).
//   migration_peer dst|src <vdev> <file-prefix> [rounds [streams]] [key=value ...]
// keys: local=IP peer=IP gateway=IP (next hop; the source resolves it by ARP) and arp=1
// (resolve the peer by ARP instead of the fixed test MACs).
// Both ends build the same guest image from a fixed seed and replay the same writes
// between rounds, so the destination can check every byte it received against its own
// copy of what the source held at the end, in a separate address space. Exit 0 only when
// the destination's memory matches exactly (dst) or every page was acknowledged (src).
#include <rte_ethdev.h>
#include <rte_cycles.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../unit/pages.hpp"
#include "pagewire/transport/eal.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"

using namespace pagewire;
using namespace pagewire::transport;

namespace {

constexpr std::uint32_t kPage = 4096;
constexpr std::uint64_t kPages = 8192;  // 32 MiB

test::Bytes initial_guest() {
  test::Bytes guest(kPages * kPage);
  std::mt19937_64 rng(2026);
  constexpr test::PageKind kinds[] = {test::PageKind::kZero, test::PageKind::kText, test::PageKind::kBinary,
                                      test::PageKind::kRandom, test::PageKind::kSparse};
  for (std::uint64_t p = 0; p < kPages; ++p) test::fill_page(guest.data() + p * kPage, kPage, kinds[(p / 5) % 5], rng);
  return guest;
}

std::vector<std::uint64_t> write_round(test::Bytes& guest, std::mt19937_64& rng) {
  std::vector<std::uint64_t> dirty;
  for (std::uint64_t p = rng() % 7; p < kPages; p += 1 + rng() % 13) {
    test::dirty_runs(guest.data() + p * kPage, kPage, 1 + static_cast<int>(rng() % 3), 1 + rng() % 64, rng);
    dirty.push_back(p);
  }
  return dirty;
}

std::uint32_t parse_ip(const std::string& text) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (std::sscanf(text.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) != 4) return 0;
  return a << 24 | b << 16 | c << 8 | d;
}

int fail(const std::string& role, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", role.c_str(), message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s src|dst <vdev> <file-prefix> [rounds] [streams]\n", argv[0]);
    return 2;
  }
  const std::string role = argv[1];
  const bool source = role == "src";
  int rounds = 3;
  std::uint16_t streams = 1;
  std::uint32_t local_ip = source ? 0x0a000001u : 0x0a000002u;
  std::uint32_t peer_ip = source ? 0x0a000002u : 0x0a000001u;
  std::uint32_t gateway = 0;
  bool use_arp = false;
  int positional = 0;
  for (int i = 4; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto equals = arg.find('=');
    if (equals == std::string::npos) {
      ++positional;
      if (positional == 1) rounds = std::atoi(arg.c_str());
      if (positional == 2) streams = static_cast<std::uint16_t>(std::atoi(arg.c_str()));
      continue;
    }
    const std::string key = arg.substr(0, equals), value = arg.substr(equals + 1);
    if (key == "local") local_ip = parse_ip(value);
    else if (key == "peer") peer_ip = parse_ip(value);
    else if (key == "gateway") gateway = parse_ip(value);
    else if (key == "arp") use_arp = value == "1";
    else return fail(role, "unknown argument " + arg);
  }
  EalOptions eal;
  eal.program = "migration_peer";
  eal.file_prefix = argv[3];
  eal.vdevs = {argv[2]};
  if (auto status = init_eal(eal); !status) return fail(role, status.error().message);
  if (rte_eth_dev_count_avail() == 0) return fail(role, std::string("no port from --vdev=") + argv[2]);

  auto port = Port::open(PortConfig{.port_id = 0, .queues = streams, .mtu = 9000, .held_frames_per_queue = 2048,
                                    .name = role});
  if (!port) return fail(role, port.error().message);
  if (role == "dst") {
    std::printf("dst: port started\n");  // the driver starts the client only after this
    std::fflush(stdout);
  }
  // Without ARP, both ends use fixed test MACs (memif ports have role-independent defaults).
  rte_ether_addr src_mac{{0x02, 0x50, 0x57, 0, 0, 1}}, dst_mac{{0x02, 0x50, 0x57, 0, 0, 2}};
  if (!use_arp) rte_eth_dev_default_mac_addr_set(port->id(), source ? &src_mac : &dst_mac);
  if (auto linked = port->await_link(10000); !linked) return fail(role, linked.error().message);

  SessionConfig config;
  config.streams = streams;
  config.page_size = kPage;
  config.region_pages = kPages;
  config.path.local = Endpoint{use_arp ? port->mac() : (source ? src_mac : dst_mac), local_ip, 47000};
  config.path.peer = Endpoint{use_arp ? rte_ether_addr{} : (source ? dst_mac : src_mac), peer_ip, 47000};
  config.next_hop_ip = gateway;
  config.tuning.window_frames = 256;
  config.tuning.receive_window_frames = 1024;
  config.hello_timeout_ms = 20000;
  config.delta_cache_bytes = 16 << 20;

  test::Bytes guest = initial_guest();
  std::mt19937_64 writes(99);
  if (source) {
    auto session = SourceSession::connect(config, *port, pagecodec::PageMap::contiguous(guest.data(), kPages, config.page_size));
    if (!session) return fail(role, session.error().message);
    std::vector<std::uint64_t> pages(kPages);
    std::iota(pages.begin(), pages.end(), 0);
    for (int round = 0; round <= rounds; ++round) {
      if (round > 0) pages = write_round(guest, writes);
      (*session)->begin_round(pages, static_cast<std::uint32_t>(round + 1));
      if (auto status = (*session)->run_until_idle(60000); !status) return fail(role, status.error().message);
    }
    (*session)->begin_finish();
    if (auto status = (*session)->run_until_idle(60000); !status) return fail(role, status.error().message);
    const auto totals = (*session)->totals();
    // The side that started closes last: memif's PMD unmaps its rings when the peer goes, even
    // under a data path still polling them (docs/design.md), and the destination lingers a
    // moment in TIME-WAIT after the FIN.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::printf("src: path MTU %u, %lu frames, %lu resent\n", (*session)->path_mtu(),
                static_cast<unsigned long>(totals.streams.frames_sent),
                static_cast<unsigned long>(totals.streams.retransmits_sack + totals.streams.retransmits_timeout));
    return 0;
  }
  test::Bytes destination(guest.size());
  auto session = DestinationSession::accept(config, *port, pagecodec::PageMap::contiguous(destination.data(), kPages, config.page_size));
  if (!session) return fail(role, session.error().message);
  if (auto status = (*session)->run_until_finished(); !status) return fail(role, status.error().message);
  (*session)->linger();
  for (int round = 1; round <= rounds; ++round) write_round(guest, writes);  // what the source holds now
  if (destination != guest) {
    std::uint64_t differing = 0;
    for (std::uint64_t p = 0; p < kPages; ++p) {
      differing += std::memcmp(destination.data() + p * kPage, guest.data() + p * kPage, kPage) != 0;
    }
    return fail(role, std::to_string(differing) + " pages differ from the source's final image");
  }
  std::printf("dst: %lu pages verified byte for byte\n", static_cast<unsigned long>(kPages));
  return 0;
}
