#include "pagewire/rigs/middlebox.hpp"

#include "pagewire/transport/frame.hpp"

#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ether.h>
#include <rte_ip.h>

#include <algorithm>
#include <chrono>
#include <functional>

namespace pagewire::rigs {

Middlebox::Middlebox(const std::string& name, std::uint16_t queues, rte_mempool* copy_pool,
                     const LinkImpairment& impairment, std::uint64_t seed)
    : copy_pool_(copy_pool), impairment_(impairment), tsc_hz_(rte_get_tsc_hz()), rng_(seed),
      mtu_clamp_(impairment.mtu_clamp) {
  if (impairment_.rate_bytes_per_second > 0 && impairment_.queue_limit_bytes == 0) {
    impairment_.queue_limit_bytes = static_cast<std::uint64_t>(impairment_.rate_bytes_per_second * 0.02);
  }
  if (impairment_.scatter_bytes != 0) {
    // The receiver holds out-of-order frames, each over several buffers: room for a
    // receive window's worth per queue, or the repair of a hole would find none.
    const std::uint32_t per_frame = (transport::kMaxPathMtu + 64 + impairment_.scatter_bytes - 1) / impairment_.scatter_bytes;
    scatter_pool_ = rte_pktmbuf_pool_create((name + "sc").c_str(), queues * 2048 * per_frame, 256, 0,
                                            static_cast<std::uint16_t>(impairment_.scatter_bytes + RTE_PKTMBUF_HEADROOM),
                                            SOCKET_ID_ANY);
  }
  // Rings large enough for what a long, fast path holds in flight.
  constexpr unsigned kRingSize = 16384;
  auto make = [&](const std::string& what, std::uint16_t q) {
    const std::string ring_name = name + what + std::to_string(q);
    rte_ring* ring = rte_ring_create(ring_name.c_str(), kRingSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
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
  directions_.resize(2 * queues);
  for (std::uint16_t q = 0; q < queues; ++q) {
    directions_[2 * q].in = a_tx_[q];
    directions_[2 * q].out = b_rx_[q];
    directions_[2 * q + 1].in = b_tx_[q];
    directions_[2 * q + 1].out = a_rx_[q];
  }
}

Middlebox::~Middlebox() {
  stop();
  drain();
  for (rte_ring* ring : rings_) rte_ring_free(ring);
  rte_mempool_free(scatter_pool_);
}

void Middlebox::start() {
  running_ = true;
  thread_ = std::thread([this] {
    while (running_.load(std::memory_order_relaxed)) {
      std::size_t moved = 0;
      const std::uint64_t now = rte_rdtsc();
      for (auto& direction : directions_) moved += forward(direction, now);
      if (moved != 0) continue;
      // A link that delays frames by milliseconds loses nothing by looking every 20 us, and
      // leaves the CPU to the ends it stands between (two vCPUs, three threads); one without
      // delay forwards at once.
      if (impairment_.delays()) {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      } else {
        std::this_thread::yield();
      }
    }
  });
}

void Middlebox::stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  for (auto& d : directions_) {
    for (rte_mbuf* mbuf : d.held) rte_pktmbuf_free(mbuf);
    for (rte_mbuf* mbuf : d.bottleneck) rte_pktmbuf_free(mbuf);
    for (const Timed& timed : d.in_flight) rte_pktmbuf_free(timed.mbuf);
    d.held.clear();
    d.bottleneck.clear();
    d.bottleneck_bytes = 0;
    d.in_flight.clear();
  }
}

void Middlebox::drain() {
  for (rte_ring* ring : rings_) {
    void* mbuf = nullptr;
    while (rte_ring_dequeue(ring, &mbuf) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(mbuf));
  }
}

bool Middlebox::inject_to_b(rte_mbuf* mbuf, std::uint16_t queue) { return rte_ring_enqueue(b_rx_[queue], mbuf) == 0; }
bool Middlebox::inject_to_a(rte_mbuf* mbuf, std::uint16_t queue) { return rte_ring_enqueue(a_rx_[queue], mbuf) == 0; }

void Middlebox::deliver(rte_ring* out, rte_mbuf* mbuf) {
  if (rte_ring_enqueue(out, mbuf) != 0) {
    rte_pktmbuf_free(mbuf);  // a full queue drops, as a switch would
    ++counters_.dropped;
  } else {
    ++counters_.forwarded;
  }
}

// Into the bottleneck queue when the rate is capped, else straight onto the wire.
void Middlebox::admit(Direction& d, rte_mbuf* mbuf, std::uint64_t now) {
  if (impairment_.rate_bytes_per_second <= 0) {
    propagate(d, mbuf, now);
    return;
  }
  if (d.bottleneck_bytes + rte_pktmbuf_pkt_len(mbuf) > impairment_.queue_limit_bytes) {
    ++counters_.queue_dropped;
    rte_pktmbuf_free(mbuf);
    return;
  }
  d.bottleneck_bytes += rte_pktmbuf_pkt_len(mbuf);
  d.bottleneck.push_back(mbuf);
}

// On the wire: arrives after the delay (and jitter), or at once.
void Middlebox::propagate(Direction& d, rte_mbuf* mbuf, std::uint64_t now) {
  if (impairment_.delay_us == 0 && impairment_.jitter_us == 0) {
    deliver(d.out, mbuf);
    return;
  }
  double delay_us = impairment_.delay_us;
  if (impairment_.jitter_us != 0) {
    delay_us += std::uniform_real_distribution<double>(-1.0, 1.0)(rng_) * impairment_.jitter_us;
  }
  const auto delay_tsc = static_cast<std::uint64_t>(std::max(delay_us, 0.0) * static_cast<double>(tsc_hz_) / 1e6);
  d.in_flight.push_back({now + delay_tsc, d.admitted++, mbuf});
  std::push_heap(d.in_flight.begin(), d.in_flight.end(), std::greater<>{});
}

std::size_t Middlebox::release(Direction& d, std::uint64_t now) {
  std::size_t released = 0;
  if (!d.bottleneck.empty()) {
    // A backlogged link sends all the time, also while this thread was descheduled: credit
    // the whole gap (the frames then leave a little late, not never). An idle link banks
    // nothing.
    const double elapsed = static_cast<double>(now - d.tokens_tsc) / static_cast<double>(tsc_hz_);
    d.tokens += elapsed * impairment_.rate_bytes_per_second;
    d.tokens_tsc = now;
    while (!d.bottleneck.empty() && d.tokens >= rte_pktmbuf_pkt_len(d.bottleneck.front())) {
      rte_mbuf* mbuf = d.bottleneck.front();
      d.bottleneck.pop_front();
      d.tokens -= rte_pktmbuf_pkt_len(mbuf);
      d.bottleneck_bytes -= rte_pktmbuf_pkt_len(mbuf);
      propagate(d, mbuf, now);
      ++released;
    }
    if (d.bottleneck.empty()) d.tokens = 0;
  } else {
    d.tokens_tsc = now;
    d.tokens = 0;
  }
  while (!d.in_flight.empty() && d.in_flight.front().due <= now) {
    std::pop_heap(d.in_flight.begin(), d.in_flight.end(), std::greater<>{});
    deliver(d.out, d.in_flight.back().mbuf);
    d.in_flight.pop_back();
    ++released;
  }
  return released;
}

// A copy of `mbuf` over buffers of impairment_.scatter_bytes each, as a port with RX
// scatter would deliver it. Null when the copy pool runs short.
rte_mbuf* Middlebox::scatter(const rte_mbuf* mbuf) {
  rte_mbuf* head = nullptr;
  const std::uint32_t length = rte_pktmbuf_pkt_len(mbuf);
  for (std::uint32_t offset = 0; offset < length; offset += impairment_.scatter_bytes) {
    rte_mbuf* segment = rte_pktmbuf_alloc(scatter_pool_);
    const auto take = static_cast<std::uint16_t>(std::min<std::uint32_t>(impairment_.scatter_bytes, length - offset));
    auto* bytes = segment != nullptr ? rte_pktmbuf_append(segment, take) : nullptr;
    if (bytes == nullptr || (head != nullptr && rte_pktmbuf_chain(head, segment) != 0)) {
      if (segment != nullptr) rte_pktmbuf_free(segment);
      if (head != nullptr) rte_pktmbuf_free(head);
      return nullptr;
    }
    transport::copy_bytes(mbuf, offset, take, reinterpret_cast<std::byte*>(bytes));
    if (head == nullptr) head = segment;
  }
  return head;
}

std::span<const std::byte> Middlebox::whole_frame(const rte_mbuf* mbuf) {
  if (mbuf->next == nullptr) return {rte_pktmbuf_mtod(mbuf, const std::byte*), rte_pktmbuf_data_len(mbuf)};
  // A frame carrying pages by reference: seen whole, copied out of its chain.
  tap_copy_.resize(rte_pktmbuf_pkt_len(mbuf));
  transport::copy_bytes(mbuf, 0, rte_pktmbuf_pkt_len(mbuf), tap_copy_.data());
  return tap_copy_;
}

std::size_t Middlebox::forward(Direction& d, std::uint64_t now) {
  void* burst[32];
  const unsigned n = rte_ring_dequeue_burst(d.in, burst, 32, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    auto* mbuf = static_cast<rte_mbuf*>(burst[i]);
    if (tap_) tap_(whole_frame(mbuf));
    if (impairment_.drop_if && impairment_.drop_if(whole_frame(mbuf))) {
      ++counters_.filtered;
      rte_pktmbuf_free(mbuf);
      continue;
    }
    const transport::LinkHeader link = transport::link_header(mbuf);
    const auto* ip = rte_pktmbuf_mtod_offset(mbuf, const rte_ipv4_hdr*, link.bytes);
    const bool has_ip_header = link.bytes != 0 && rte_pktmbuf_data_len(mbuf) >= link.bytes + sizeof(rte_ipv4_hdr);
    const std::uint16_t clamp = mtu_clamp_.load(std::memory_order_relaxed);
    if (clamp != 0 && has_ip_header && link.ether_type == RTE_ETHER_TYPE_IPV4 &&
        rte_be_to_cpu_16(ip->total_length) > clamp) {
      ++counters_.clamped;
      rte_pktmbuf_free(mbuf);
      continue;
    }
    if (impairment_.burst_enter > 0) {
      d.bad = d.bad ? !chance(impairment_.burst_exit) : chance(impairment_.burst_enter);
      if (d.bad) {
        ++counters_.burst_dropped;
        rte_pktmbuf_free(mbuf);
        continue;
      }
    }
    if (cut_.load(std::memory_order_relaxed)) {
      ++counters_.cut;
      rte_pktmbuf_free(mbuf);
      continue;
    }
    if (chance(impairment_.drop)) {
      ++counters_.dropped;
      rte_pktmbuf_free(mbuf);
      continue;
    }
    if (copy_pool_ != nullptr && chance(impairment_.corrupt)) {
      // The sender keeps this very mbuf for retransmission: corrupt a copy.
      rte_mbuf* copy = rte_pktmbuf_copy(mbuf, copy_pool_, 0, UINT32_MAX);
      rte_pktmbuf_free(mbuf);
      if (copy == nullptr) continue;
      auto* bytes = rte_pktmbuf_mtod(copy, std::uint8_t*);
      bytes[rng_() % rte_pktmbuf_data_len(copy)] ^= static_cast<std::uint8_t>(1u << (rng_() % 8));
      mbuf = copy;
      ++counters_.corrupted;
    }
    if (scatter_pool_ != nullptr && rte_pktmbuf_pkt_len(mbuf) > impairment_.scatter_bytes) {
      rte_mbuf* chain = scatter(mbuf);
      rte_pktmbuf_free(mbuf);
      if (chain == nullptr) continue;
      mbuf = chain;
      ++counters_.scattered;
    }
    if (chance(impairment_.duplicate)) {
      rte_pktmbuf_refcnt_update(mbuf, 1);
      admit(d, mbuf, now);
      ++counters_.duplicated;
    }
    if (chance(impairment_.reorder)) {
      d.held.push_back(mbuf);
      ++counters_.reordered;
      continue;
    }
    admit(d, mbuf, now);
    if (!d.held.empty() && rng_() % 3 == 0) {
      admit(d, d.held.front(), now);
      d.held.pop_front();
    }
  }
  std::size_t moved = n;
  if (n == 0 && !d.held.empty()) {  // nothing else coming: release what was held
    admit(d, d.held.front(), now);
    d.held.pop_front();
    ++moved;
  }
  return moved + release(d, now);
}

}  // namespace pagewire::rigs
