#include "pagewire/rigs/ring_pair.hpp"

#include <rte_eth_ring.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include <tuple>
#include <utility>

namespace pagewire::rigs {

Result<RingPair> RingPair::create(const std::string& name, std::uint16_t queues, unsigned ring_size) {
  RingPair pair;
  std::vector<rte_ring*> a_to_b, b_to_a;
  for (std::uint16_t q = 0; q < queues; ++q) {
    for (auto* list : {&a_to_b, &b_to_a}) {
      const std::string ring_name = name + (list == &a_to_b ? "ab" : "ba") + std::to_string(q);
      rte_ring* ring = rte_ring_create(ring_name.c_str(), ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (ring == nullptr) {
        return make_error("ring pair " + name + ": cannot create ring " + ring_name + ": " + rte_strerror(rte_errno));
      }
      list->push_back(ring);
      pair.rings_.push_back(ring);
    }
  }
  const int a = rte_eth_from_rings((name + "a").c_str(), b_to_a.data(), queues, a_to_b.data(), queues, SOCKET_ID_ANY);
  const int b = rte_eth_from_rings((name + "b").c_str(), a_to_b.data(), queues, b_to_a.data(), queues, SOCKET_ID_ANY);
  if (a < 0 || b < 0) return make_error("ring pair " + name + ": net_ring refused: " + rte_strerror(rte_errno));
  pair.a_port_ = static_cast<std::uint16_t>(a);
  pair.b_port_ = static_cast<std::uint16_t>(b);
  return pair;
}

RingPair::RingPair(RingPair&& other) noexcept
    : rings_(std::move(other.rings_)), a_port_(other.a_port_), b_port_(other.b_port_) {
  other.rings_.clear();
}

void RingPair::drain() {
  for (std::uint16_t queue = 0; queue < rings_.size() / 2; ++queue) drain(queue);
}

void RingPair::drain(std::uint16_t queue) {
  if (2 * std::size_t{queue} + 1 >= rings_.size()) return;  // no such queue: nothing in flight
  // create() pushes each queue's two rings in turn.
  for (rte_ring* ring : {rings_[2 * std::size_t{queue}], rings_[2 * std::size_t{queue} + 1]}) {
    void* mbuf = nullptr;
    while (rte_ring_dequeue(ring, &mbuf) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(mbuf));
  }
}

RingPair::~RingPair() {
  for (rte_ring* ring : rings_) rte_ring_free(ring);
}

Result<std::unique_ptr<RingLink>> RingLink::create(const std::string& name, std::uint16_t queues, std::uint16_t mtu,
                                                   std::uint32_t held_frames_per_queue,
                                                   const LinkImpairment* impairment) {
  std::unique_ptr<RingLink> link(new RingLink());
  std::uint16_t a_id = 0, b_id = 0;
  if (impairment != nullptr) {
    link->middlebox_ = std::make_unique<Middlebox>(name, queues, nullptr, *impairment, 42);
    if (link->middlebox_->a_port() < 0 || link->middlebox_->b_port() < 0) {
      return make_error("cannot create the impaired ring link " + name);
    }
    a_id = static_cast<std::uint16_t>(link->middlebox_->a_port());
    b_id = static_cast<std::uint16_t>(link->middlebox_->b_port());
  } else {
    auto pair = RingPair::create(name, queues);
    if (!pair) return pair.error();
    link->pair_.emplace(std::move(pair).value());
    a_id = link->pair_->a_port();
    b_id = link->pair_->b_port();
  }
  for (auto [id, port, role] : {std::tuple{a_id, &link->a_, "a"}, std::tuple{b_id, &link->b_, "b"}}) {
    auto opened = transport::Port::open({.port_id = id, .queues = queues, .mtu = mtu,
                                         .held_frames_per_queue = held_frames_per_queue, .name = name + role});
    if (!opened) return opened.error();
    *port = std::make_unique<transport::Port>(std::move(opened).value());
  }
  if (link->middlebox_) link->middlebox_->start();
  return link;
}

RingLink::~RingLink() {
  if (middlebox_) {
    middlebox_->stop();
    middlebox_->drain();
  }
  if (pair_) pair_->drain();
  a_.reset();
  b_.reset();
}

}  // namespace pagewire::rigs
