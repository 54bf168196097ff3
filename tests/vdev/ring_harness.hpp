// The transport's in-process test rig: two net_ring ports joined by an impairing
// middlebox, a guest image generator, and a miniature pre-copy whose destination session
// runs on its own thread. Shared by the vdev tests; every test checks destination memory
// byte for byte against the source.
#pragma once

#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>

#include "../unit/pages.hpp"
#include "pagewire/rigs/middlebox.hpp"
#include "pagewire/transport/eal.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/stream.hpp"

namespace pagewire::transport::test_ring {

using pagewire::test::Bytes;

class EalEnvironment : public ::testing::Environment {
 public:
  explicit EalEnvironment(std::string program) : program_(std::move(program)) {}
  void SetUp() override {
    EalOptions options;
    options.program = program_;
    options.file_prefix = "pw-vdev-" + std::to_string(getpid());
    options.no_huge_megabytes = 1024;
    const Status status = init_eal(options);
    ASSERT_TRUE(status.ok()) << status.error().message;
  }

 private:
  std::string program_;
};

inline constexpr std::uint32_t kPage = 4096;

// Source and destination ports joined by a RingLink, torn down in the safe order.
class Harness {
 public:
  Harness(std::uint16_t queues, rigs::LinkImpairment impairment, std::uint16_t mtu = 9000,
          std::uint32_t held_frames_per_queue = 1024) {
    static int instance = 0;
    const std::string name = "l" + std::to_string(instance++);
    copy_pool_ = rte_pktmbuf_pool_create((name + "cp").c_str(), 4095, 0, 0, 9400 + RTE_PKTMBUF_HEADROOM, SOCKET_ID_ANY);
    link_ = std::make_unique<rigs::Middlebox>(name, queues, copy_pool_, impairment, 1234);
    auto open = [&](int id, const char* role) {
      PortConfig config{.port_id = static_cast<std::uint16_t>(id),
                        .queues = queues,
                        .mtu = mtu,
                        .rx_descriptors = 512,
                        .tx_descriptors = 512,
                        .held_frames_per_queue = held_frames_per_queue,
                        .name = name + role};
      auto port = Port::open(config);
      EXPECT_TRUE(port.ok()) << (port.ok() ? "" : port.error().message);
      return std::make_unique<Port>(std::move(port).value());
    };
    source_port_ = open(link_->a_port(), "src");
    destination_port_ = open(link_->b_port(), "dst");
    link_->start();
  }

  ~Harness() {
    link_->stop();
    link_->drain();
    source_port_.reset();
    destination_port_.reset();
    link_.reset();
    rte_mempool_free(copy_pool_);
  }

  SessionConfig config(std::uint16_t streams, std::uint64_t pages, bool for_source) const {
    SessionConfig c;
    c.streams = streams;
    c.page_size = kPage;
    c.region_pages = pages;
    const Port& self = for_source ? *source_port_ : *destination_port_;
    const Port& peer = for_source ? *destination_port_ : *source_port_;
    c.path.local = Endpoint{self.mac(), for_source ? 0x0a000001u : 0x0a000002u, 47000};
    c.path.peer = Endpoint{peer.mac(), for_source ? 0x0a000002u : 0x0a000001u, 47000};
    // The middlebox stands for a network: frames checked, congestion control chosen, as on one.
    c.emulated_network = true;
    c.tuning.window_frames = 256;
    c.tuning.receive_window_frames = 1024;
    c.tuning.min_rto_us = 5000;  // three busy threads share two vCPUs here
    // Deterministic: a descheduled thread can stretch a probe past auto's 1 ms; the tests
    // of congestion control turn it on.
    c.tuning.congestion_control = StreamTuning::CongestionControl::kOff;
    c.hello_timeout_ms = 10000;
    c.delta_cache_bytes = 8 << 20;
    return c;
  }

  const Port& source_port() const { return *source_port_; }
  const Port& destination_port() const { return *destination_port_; }
  rigs::Middlebox& link() { return *link_; }

 private:
  rte_mempool* copy_pool_ = nullptr;
  std::unique_ptr<rigs::Middlebox> link_;
  std::unique_ptr<Port> source_port_;
  std::unique_ptr<Port> destination_port_;
};

inline Bytes make_guest(std::uint64_t pages, std::uint64_t seed) {
  Bytes guest(pages * kPage);
  std::mt19937_64 rng(seed);
  constexpr pagewire::test::PageKind kinds[] = {pagewire::test::PageKind::kZero, pagewire::test::PageKind::kText, pagewire::test::PageKind::kBinary,
                                      pagewire::test::PageKind::kRandom, pagewire::test::PageKind::kSparse};
  for (std::uint64_t p = 0; p < pages; ++p) pagewire::test::fill_page(guest.data() + p * kPage, kPage, kinds[(p / 7) % 5], rng);
  return guest;
}

// The guest writes between rounds: a few bytes in some pages, whole pages in others.
inline std::vector<std::uint64_t> dirty_some(Bytes& guest, std::uint64_t pages, std::mt19937_64& rng) {
  std::vector<std::uint64_t> dirty;
  for (std::uint64_t p = rng() % 5; p < pages; p += 1 + rng() % 9) {
    if (rng() % 3 == 0) {
      pagewire::test::fill_page(guest.data() + p * kPage, kPage, pagewire::test::PageKind::kText, rng);
    } else {
      pagewire::test::dirty_runs(guest.data() + p * kPage, kPage, 2, 24, rng);
    }
    dirty.push_back(p);
  }
  return dirty;
}

struct MigrationResult {
  std::uint16_t path_mtu = 0;
  std::uint16_t source_streams = 0, destination_streams = 0;  // what the sessions ran
  std::string source_streams_note, destination_streams_note;
  bool congestion_controlled = false;
  SessionTotals source;
  SessionTotals destination;
  std::string source_error;
  std::string destination_error;
};

// The first config.region_pages pages of `memory`: the region `config` offers (a test may
// offer less than it holds).
inline pagecodec::PageMap pages_of(Bytes& memory, const SessionConfig& config) {
  EXPECT_LE(config.region_pages * config.page_size, memory.size());
  return pagecodec::PageMap::contiguous(memory.data(), config.region_pages, config.page_size);
}

// The destination's half of a test migration: accepts, runs until finished and lingers on
// a thread of its own, recording its errors in `result`.
class DestinationThread {
 public:
  DestinationThread(Harness& harness, const SessionConfig& config, Bytes& destination, MigrationResult* result)
      : thread_([this, &harness, config, &destination, result] {
          auto accepted = DestinationSession::accept(config, harness.destination_port(), pages_of(destination, config));
          if (!accepted) {
            result->destination_error = accepted.error().message;
            return;
          }
          receiver_ = std::move(accepted).value();
          result->destination_streams = receiver_->streams();
          result->destination_streams_note = receiver_->streams_note();
          running_.store(receiver_.get(), std::memory_order_release);
          if (auto status = receiver_->run_until_finished(); !status) result->destination_error = status.error().message;
          receiver_->linger();
        }) {}
  ~DestinationThread() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // The session while it runs (null before it was accepted); any thread.
  DestinationSession* running() const { return running_.load(std::memory_order_acquire); }
  // After join(): the session, if one was accepted.
  const DestinationSession* session() const { return receiver_.get(); }

 private:
  std::unique_ptr<DestinationSession> receiver_;
  std::atomic<DestinationSession*> running_{nullptr};
  std::thread thread_;
};

// Pre-copy in miniature: round 0 sends everything, then `rounds` rounds of dirtied pages.
// `after_round` (optional) runs on the source's thread after each round, with the
// destination's session running on its own; `source_between_rounds` (optional) next, with
// the source's session.
inline MigrationResult migrate(Harness& harness, Bytes& guest, Bytes& destination, int rounds,
                        SessionConfig source_config, SessionConfig destination_config,
                        const std::function<void(DestinationSession&)>& after_round = {},
                        SourceSession::RoundPages kind = SourceSession::RoundPages::kMayChange,
                        const std::function<void(SourceSession&)>& source_between_rounds = {}) {
  MigrationResult result;
  const std::uint64_t pages = guest.size() / kPage;
  DestinationThread receiver(harness, destination_config, destination, &result);
  auto connected = SourceSession::connect(source_config, harness.source_port(), pages_of(guest, source_config));
  if (!connected) {
    result.source_error = connected.error().message;
    return result;
  }
  auto& source = *connected.value();
  result.path_mtu = source.path_mtu();
  result.source_streams = source.streams();
  result.source_streams_note = source.streams_note();
  result.congestion_controlled = source.stream(0).congestion_controlled();
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);
  source.begin_round(all, 1, kind);
  Status status = source.run_until_idle(60000);
  std::mt19937_64 rng(77);
  for (int round = 1; status && round <= rounds; ++round) {
    if (after_round) {
      if (DestinationSession* session = receiver.running()) after_round(*session);
    }
    if (source_between_rounds) source_between_rounds(source);
    const auto dirty = dirty_some(guest, pages, rng);
    source.begin_round(dirty, static_cast<std::uint32_t>(round + 1), kind);
    status = source.run_until_idle(60000);
  }
  if (status) {
    source.begin_finish();
    status = source.run_until_idle(60000);
  }
  if (!status) result.source_error = status.error().message;
  receiver.join();
  result.source = source.totals();
  if (receiver.session() != nullptr) result.destination = receiver.session()->totals();
  return result;
}

inline std::uint64_t drops(const SessionTotals& t, FrameDrop why) { return t.streams.drops[static_cast<std::size_t>(why)]; }

}  // namespace pagewire::transport::test_ring
