// The pacing controller against a simulated path: a bottleneck of a given rate with a
// tail-drop queue, propagation delay each way, and random loss. The sender always has data;
// ACKs come back one per frame. What a migration needs: most of the bottleneck's rate on a
// long path, with and without random loss, a short queue, and a quick start on a LAN.
#include "pagewire/transport/pacing_controller.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <queue>
#include <random>
#include <vector>

namespace pagewire::transport {
namespace {

constexpr std::uint64_t kHz = 1'000'000'000;  // ticks are nanoseconds
constexpr std::uint32_t kFrame = 9000;

struct Path {
  double rate = 125e6;                  // bottleneck bytes per second
  double queue_seconds = 0.020;         // its queue, in time at its rate
  std::uint64_t one_way_ns = 75'000'000;
  double loss = 0;                      // random, before the bottleneck
};

struct Outcome {
  double rate_share = 0;   // delivered in the second half / the bottleneck's rate
  double queue_drops = 0;  // share of frames sent in the second half the queue dropped
  double all_queue_drops = 0;  // the same over the whole run, start-up included
  PacingController::Mode mode{};
};

Outcome simulate(const Path& path, double seconds, std::uint64_t seed = 1) {
  struct Frame {
    std::uint64_t sent;
    DeliveryStamp stamp;
    bool lost;
  };
  struct Ack {
    std::uint64_t at;
    std::size_t frame;
    bool operator>(const Ack& other) const { return at > other.at; }
  };
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0, 1);
  PacingController controller(kHz, kFrame, 2 * path.one_way_ns);
  std::vector<Frame> frames;
  std::priority_queue<Ack, std::vector<Ack>, std::greater<>> acks;
  const auto service_ns = static_cast<std::uint64_t>(kFrame / path.rate * 1e9);
  const auto queue_limit_ns = static_cast<std::uint64_t>(path.queue_seconds * 1e9);
  const auto end = static_cast<std::uint64_t>(seconds * 1e9);
  std::uint64_t now = 0, next_send = 0, link_free = 0, inflight = 0;
  std::uint64_t delivered_late = 0, sent_late = 0, dropped_late = 0, dropped = 0;
  while (now < end) {
    // Send while the window and the pacing rate allow.
    while (now >= next_send && inflight + kFrame <= controller.window_bytes()) {
      Frame frame{now, controller.on_send(now, inflight), false};
      inflight += kFrame;
      const bool late = now > end / 2;
      sent_late += late;
      std::uint64_t delivered_at = 0;
      if (uniform(rng) < path.loss) {
        frame.lost = true;
      } else {
        const std::uint64_t arrive = now + path.one_way_ns;
        const std::uint64_t start = std::max(arrive, link_free);
        if (start - arrive > queue_limit_ns) {
          frame.lost = true;
          dropped_late += late;
          ++dropped;
        } else {
          link_free = start + service_ns;
          delivered_at = link_free;
        }
      }
      // Lost frames leave the pipe when SACK reveals them, about when their ACK would come.
      acks.push({frame.lost ? now + 2 * path.one_way_ns + service_ns : delivered_at + path.one_way_ns, frames.size()});
      frames.push_back(frame);
      next_send += static_cast<std::uint64_t>(kFrame / controller.pacing_bytes_per_second() * 1e9);
      next_send = std::max(next_send, now);
    }
    const std::uint64_t next_ack = acks.empty() ? end : acks.top().at;
    const bool window_full = inflight + kFrame > controller.window_bytes();
    now = std::max(now, std::min(next_ack, window_full ? next_ack : std::max(next_send, now + 1)));
    while (!acks.empty() && acks.top().at <= now) {
      const Frame& frame = frames[acks.top().frame];
      acks.pop();
      inflight -= kFrame;
      if (frame.lost) {
        controller.on_loss(kFrame);
        continue;
      }
      if (frame.sent > end / 2) delivered_late += kFrame;
      controller.on_ack(now, kFrame, frame.stamp, frame.sent, now - frame.sent, inflight);
    }
  }
  return {.rate_share = static_cast<double>(delivered_late) / (path.rate * seconds / 2),
          .queue_drops = sent_late == 0 ? 0 : static_cast<double>(dropped_late) / static_cast<double>(sent_late),
          .all_queue_drops = frames.empty() ? 0 : static_cast<double>(dropped) / static_cast<double>(frames.size()),
          .mode = controller.mode()};
}

TEST(PacingController, LongCappedPathRunsNearItsRateWithAShortQueue) {
  const Outcome outcome = simulate(Path{}, 20);
  EXPECT_GE(outcome.rate_share, 0.85);
  // Each 1.25x probe overfills a queue of 20 ms on a 150 ms path for a moment (see the header).
  EXPECT_LE(outcome.queue_drops, 0.02);
  EXPECT_EQ(outcome.mode, PacingController::Mode::kProbeBandwidth);
}

// 2 Gbit/s over 150 ms into a 20 ms queue: start-up at 2.89x overfills the queue every
// round it goes on, and on a window of two bandwidth-delay products (37.5 MB here) three
// more rounds drop tens of MB. Losses above 2 % of a round end it at the first overflow.
TEST(PacingController, StartUpEndsWhenAShallowQueueOverflows) {
  Path path;
  path.rate = 250e6;
  const Outcome outcome = simulate(path, 6);
  EXPECT_LE(outcome.all_queue_drops, 0.05);
  EXPECT_GE(outcome.rate_share, 0.85);
  EXPECT_EQ(outcome.mode, PacingController::Mode::kProbeBandwidth);
}

TEST(PacingController, RandomLossIsNotTakenForCongestion) {
  Path lossy;
  lossy.loss = 0.01;
  const Outcome outcome = simulate(lossy, 20);
  // A loss-based window would hold a few Mbit/s here (Mathis: 1.22 MSS / (RTT sqrt p)).
  EXPECT_GE(outcome.rate_share, 0.80 * (1 - lossy.loss));
}

TEST(PacingController, ALanPathIsFilledWithinMilliseconds) {
  Path lan;
  lan.rate = 1.25e9;  // 10 Gbit/s
  lan.one_way_ns = 50'000;
  lan.queue_seconds = 0.001;
  const Outcome outcome = simulate(lan, 0.1);
  EXPECT_GE(outcome.rate_share, 0.85);
  EXPECT_LE(outcome.queue_drops, 0.01);
}

TEST(PacingController, StartsAtTheInitialWindowOverTheHandshakeRtt) {
  PacingController controller(kHz, kFrame, 1'000'000);  // 1 ms
  EXPECT_EQ(controller.window_bytes(), std::uint64_t{PacingController::kInitialWindowFrames} * kFrame);
  EXPECT_NEAR(controller.pacing_bytes_per_second(), 2.885 * 32 * kFrame / 1e-3, 1e6);
  EXPECT_EQ(controller.bottleneck_bytes_per_second(), 0);
}

}  // namespace
}  // namespace pagewire::transport
