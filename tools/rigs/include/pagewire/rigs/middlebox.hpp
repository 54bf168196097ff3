// An impairing link between two DPDK ports in one process: two ring pairs with a forwarder
// thread between them, standing in for the network a migration crosses. It drops (at
// random, or in bursts), duplicates, reorders and corrupts frames, clamps the path MTU (a
// router with a smaller MTU drops DF packets that do not fit), delays them (up to the
// 150 ms RTT long-distance vMotion allows) with jitter, and caps the rate with a
// tail-dropping bottleneck queue. The kernel here has no netem, so this is ours. Both ports
// still advertise their own MTU.
//
// Threading: the forwarder owns every queued frame; start() and stop() belong to the
// owner's thread. Frames come from the ports' mempools: stop() and drain() before the
// ports close.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace pagewire::rigs {

struct LinkImpairment {
  double drop = 0;  // per frame, independently
  // Bursty loss (Gilbert-Elliott): from the good state a frame turns the link bad with
  // probability burst_enter; a bad link loses every frame and turns good with burst_exit.
  double burst_enter = 0;
  double burst_exit = 0.25;
  double duplicate = 0;
  double reorder = 0;  // held back and released after a few later frames
  double corrupt = 0;  // one bit flipped in a copy of the frame (needs a copy pool)
  std::uint16_t mtu_clamp = 0;  // IP packets larger than this are dropped; 0 = none
  // Frames arrive as chains of buffers of this many bytes, as from a port with RX scatter;
  // 0 = as sent.
  std::uint16_t scatter_bytes = 0;
  std::uint32_t delay_us = 0;   // one way, each direction
  std::uint32_t jitter_us = 0;  // added uniformly in [-jitter, +jitter]; frames may overtake
  // A bottleneck per direction and queue: frames leave at this rate and wait in a queue of
  // at most queue_limit_bytes (tail drop); 0 = no cap.
  double rate_bytes_per_second = 0;
  std::uint64_t queue_limit_bytes = 0;  // 0: what the rate sends in 20 ms
  // Drops every frame (whole, as sent) for which this says so, on the forwarder's thread: a
  // test losing exactly the frames it names. Empty: none.
  std::function<bool(std::span<const std::byte>)> drop_if = nullptr;

  bool delays() const { return delay_us != 0 || jitter_us != 0 || rate_bytes_per_second != 0; }
};

struct MiddleboxCounters {
  std::atomic<std::uint64_t> forwarded{0}, cut{0}, scattered{0}, dropped{0}, burst_dropped{0}, queue_dropped{0}, duplicated{0},
      reordered{0}, corrupted{0}, clamped{0}, filtered{0};
};

class Middlebox {
 public:
  // `copy_pool` is needed only when corrupt > 0.
  Middlebox(const std::string& name, std::uint16_t queues, rte_mempool* copy_pool, const LinkImpairment& impairment,
            std::uint64_t seed);
  ~Middlebox();
  Middlebox(const Middlebox&) = delete;
  Middlebox& operator=(const Middlebox&) = delete;

  int a_port() const { return a_port_; }
  int b_port() const { return b_port_; }

  void start();
  void stop();  // joins the forwarder and frees what it held
  void drain();  // frees what is still in the rings; after stop(), before the ports close

  // Sees every frame that enters the link, as it was sent, on the forwarder's thread: what
  // an eavesdropper on the path would see. Set before start().
  void set_tap(std::function<void(std::span<const std::byte>)> tap) { tap_ = std::move(tap); }

  // A pulled cable: while cut, every frame in either direction is lost. Any thread.
  void set_cut(bool cut) { cut_.store(cut, std::memory_order_relaxed); }
  // A route change mid-transfer: from now on IP packets above `mtu` are lost (0: none),
  // silently, as a tunnel that drops DF packets without ICMP does. Any thread.
  void set_mtu_clamp(std::uint16_t mtu) { mtu_clamp_.store(mtu, std::memory_order_relaxed); }

  // Puts a hand-made frame straight onto b's (or a's) receive queue (hostile-input tests).
  // The queue has one producer, the forwarder: call these before start() or from drop_if.
  bool inject_to_b(rte_mbuf* mbuf, std::uint16_t queue = 0);
  bool inject_to_a(rte_mbuf* mbuf, std::uint16_t queue = 0);

  const MiddleboxCounters& counters() const { return counters_; }

 private:
  struct Timed {
    std::uint64_t due;
    std::uint64_t order;  // frames due at the same tick leave in the order they came
    rte_mbuf* mbuf;
    bool operator>(const Timed& other) const { return due != other.due ? due > other.due : order > other.order; }
  };
  // One direction of one queue.
  struct Direction {
    rte_ring* in = nullptr;
    rte_ring* out = nullptr;
    std::deque<rte_mbuf*> held;        // reordered
    std::deque<rte_mbuf*> bottleneck;  // waiting for the rate
    std::uint64_t bottleneck_bytes = 0;
    double tokens = 0;
    std::uint64_t tokens_tsc = 0;
    std::vector<Timed> in_flight;  // a min-heap on (due, order)
    std::uint64_t admitted = 0;    // frames put in flight so far: the next one's order
    bool bad = false;              // Gilbert-Elliott state
  };

  std::size_t forward(Direction& d, std::uint64_t now);
  rte_mbuf* scatter(const rte_mbuf* mbuf);
  void admit(Direction& d, rte_mbuf* mbuf, std::uint64_t now);
  void propagate(Direction& d, rte_mbuf* mbuf, std::uint64_t now);
  std::size_t release(Direction& d, std::uint64_t now);
  void deliver(rte_ring* out, rte_mbuf* mbuf);
  bool chance(double p) { return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  rte_mempool* copy_pool_;
  LinkImpairment impairment_;
  std::uint64_t tsc_hz_;
  std::mt19937_64 rng_;
  std::vector<rte_ring*> rings_;
  std::vector<rte_ring*> a_rx_, a_tx_, b_rx_, b_tx_;
  std::vector<Direction> directions_;
  int a_port_ = -1, b_port_ = -1;
  std::atomic<bool> running_{false};
  std::atomic<bool> cut_{false};
  std::atomic<std::uint16_t> mtu_clamp_;
  std::thread thread_;
  std::span<const std::byte> whole_frame(const rte_mbuf* mbuf);  // valid until the next call
  std::function<void(std::span<const std::byte>)> tap_;
  std::vector<std::byte> tap_copy_;
  rte_mempool* scatter_pool_ = nullptr;  // impairment_.scatter_bytes buffers  // a chained frame, whole, for the tap
  MiddleboxCounters counters_;
};

}  // namespace pagewire::rigs
