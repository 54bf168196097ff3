// Two DPDK ports in one process joined by rte_rings, with a middlebox thread between them
// that impairs the path: drop, duplicate, reorder, corrupt, and an MTU clamp (a router with
// a smaller MTU drops DF packets that do not fit). Both ends still advertise their own MTU.
#pragma once

#include <rte_eth_ring.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace pagewire::test {

struct Impairment {
  double drop = 0;       // probability per frame
  double duplicate = 0;
  double reorder = 0;    // held back and released after a few later frames
  double corrupt = 0;    // one bit flipped in a copy of the frame
  std::uint16_t mtu_clamp = 0;  // IP packets larger than this are dropped; 0 = none
};

struct LinkCounters {
  std::atomic<std::uint64_t> forwarded{0}, dropped{0}, duplicated{0}, reordered{0}, corrupted{0}, clamped{0};
};

class RingLink {
 public:
  RingLink(const std::string& name, std::uint16_t queues, rte_mempool* copy_pool, Impairment impairment,
           std::uint64_t seed)
      : queues_(queues), copy_pool_(copy_pool), impairment_(impairment), rng_(seed) {
    auto make = [&](const std::string& what, std::uint16_t q) {
      const std::string ring_name = name + what + std::to_string(q);
      rte_ring* ring = rte_ring_create(ring_name.c_str(), 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      rings_.push_back(ring);
      return ring;
    };
    for (std::uint16_t q = 0; q < queues; ++q) {
      a_tx_.push_back(make("atx", q));
      a_rx_.push_back(make("arx", q));
      b_tx_.push_back(make("btx", q));
      b_rx_.push_back(make("brx", q));
    }
    a_port_ = rte_eth_from_rings((name + "a").c_str(), a_rx_.data(), queues, a_tx_.data(), queues, SOCKET_ID_ANY);
    b_port_ = rte_eth_from_rings((name + "b").c_str(), b_rx_.data(), queues, b_tx_.data(), queues, SOCKET_ID_ANY);
    held_.resize(2 * queues);
  }

  ~RingLink() {
    stop();
    for (rte_ring* ring : rings_) {
      void* mbuf = nullptr;
      while (rte_ring_dequeue(ring, &mbuf) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(mbuf));
      rte_ring_free(ring);
    }
  }

  int a_port() const { return a_port_; }
  int b_port() const { return b_port_; }

  void start() {
    running_ = true;
    thread_ = std::thread([this] {
      while (running_.load(std::memory_order_relaxed)) {
        std::size_t moved = 0;
        for (std::uint16_t q = 0; q < queues_; ++q) {
          moved += forward(a_tx_[q], b_rx_[q], held_[q]);
          moved += forward(b_tx_[q], a_rx_[q], held_[queues_ + q]);
        }
        if (moved == 0) std::this_thread::yield();
      }
    });
  }

  void stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
    for (auto& queue : held_) {
      for (rte_mbuf* mbuf : queue) rte_pktmbuf_free(mbuf);
      queue.clear();
    }
  }

  // Frees every frame in flight; call after stop() and before the ports' mempools go.
  void drain() {
    for (rte_ring* ring : rings_) {
      void* mbuf = nullptr;
      while (rte_ring_dequeue(ring, &mbuf) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(mbuf));
    }
  }

  // Puts a hand-made frame straight onto b's receive queue (hostile-input tests).
  bool inject_to_b(rte_mbuf* mbuf, std::uint16_t queue = 0) { return rte_ring_enqueue(b_rx_[queue], mbuf) == 0; }

  const LinkCounters& counters() const { return counters_; }

 private:
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  void deliver(rte_ring* out, rte_mbuf* mbuf) {
    if (rte_ring_enqueue(out, mbuf) != 0) {
      rte_pktmbuf_free(mbuf);  // a full queue drops, as a switch would
      ++counters_.dropped;
    } else {
      ++counters_.forwarded;
    }
  }

  std::size_t forward(rte_ring* in, rte_ring* out, std::deque<rte_mbuf*>& held) {
    void* burst[32];
    const unsigned n = rte_ring_dequeue_burst(in, burst, 32, nullptr);
    for (unsigned i = 0; i < n; ++i) {
      auto* mbuf = static_cast<rte_mbuf*>(burst[i]);
      const auto* eth = rte_pktmbuf_mtod(mbuf, const rte_ether_hdr*);
      const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
      if (impairment_.mtu_clamp != 0 && eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) &&
          rte_be_to_cpu_16(ip->total_length) > impairment_.mtu_clamp) {
        ++counters_.clamped;
        rte_pktmbuf_free(mbuf);
        continue;
      }
      if (chance(impairment_.drop)) {
        ++counters_.dropped;
        rte_pktmbuf_free(mbuf);
        continue;
      }
      if (chance(impairment_.corrupt)) {
        // The sender keeps this very mbuf for retransmission: corrupt a copy.
        rte_mbuf* copy = rte_pktmbuf_copy(mbuf, copy_pool_, 0, UINT32_MAX);
        rte_pktmbuf_free(mbuf);
        if (copy == nullptr) continue;
        auto* bytes = rte_pktmbuf_mtod(copy, std::uint8_t*);
        bytes[rng_() % rte_pktmbuf_data_len(copy)] ^= static_cast<std::uint8_t>(1u << (rng_() % 8));
        mbuf = copy;
        ++counters_.corrupted;
      }
      if (chance(impairment_.duplicate)) {
        rte_mbuf_refcnt_update(mbuf, 1);
        deliver(out, mbuf);
        ++counters_.duplicated;
      }
      if (chance(impairment_.reorder)) {
        held.push_back(mbuf);
        ++counters_.reordered;
        continue;
      }
      deliver(out, mbuf);
      if (!held.empty() && rng_() % 3 == 0) {
        deliver(out, held.front());
        held.pop_front();
      }
    }
    if (n == 0 && !held.empty()) {  // nothing else coming: release what was held
      deliver(out, held.front());
      held.pop_front();
      return 1;
    }
    return n;
  }

  std::uint16_t queues_;
  rte_mempool* copy_pool_;
  Impairment impairment_;
  std::mt19937_64 rng_;
  std::vector<rte_ring*> rings_, a_tx_, a_rx_, b_tx_, b_rx_;
  std::vector<std::deque<rte_mbuf*>> held_;
  int a_port_ = -1, b_port_ = -1;
  std::atomic<bool> running_{false};
  std::thread thread_;
  LinkCounters counters_;
};

}  // namespace pagewire::test
