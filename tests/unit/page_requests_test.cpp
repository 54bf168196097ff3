// PageRequests: the order in which a postcopy round sends, pages asked for first, each once.
#include "pagewire/transport/page_requests.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <vector>

namespace pagewire::transport {
namespace {

// Sends `round` as a stream does: requested pages first, the round up to the next page
// served on request, `per_step` pages at a time, with `ask` called before each step.
std::vector<std::uint64_t> send_all(PageRequests& requests, std::span<const std::uint64_t> round, std::size_t per_step,
                                    const std::function<void(std::size_t, std::span<const std::uint64_t>)>& ask) {
  std::vector<std::uint64_t> sent;
  std::span<const std::uint64_t> ahead = round;
  for (std::size_t step = 0; !ahead.empty() || !requests.idle(); ++step) {
    ask(step, ahead);
    if (auto asked = requests.requested(); !asked.empty()) {
      const std::size_t n = std::min(per_step, asked.size());
      sent.insert(sent.end(), asked.begin(), asked.begin() + static_cast<std::ptrdiff_t>(n));
      requests.taken(n);
      continue;
    }
    const std::size_t n = std::min(per_step, requests.unserved_prefix(&ahead));
    sent.insert(sent.end(), ahead.begin(), ahead.begin() + static_cast<std::ptrdiff_t>(n));
    ahead = ahead.subspan(n);
  }
  return sent;
}

TEST(PageRequests, AskedPagesGoFirstAndTheRoundSkipsThem) {
  std::vector<std::uint64_t> round(200);
  std::iota(round.begin(), round.end(), 100);  // the stream owns [100, 400)
  PageRequests requests;
  requests.begin(round, 100, 400);
  const auto sent = send_all(requests, round, 4, [&](std::size_t step, std::span<const std::uint64_t> ahead) {
    if (step == 1) {
      EXPECT_EQ(requests.ask(250, ahead), PageRequests::Take::kQueued);
      EXPECT_EQ(requests.ask(180, ahead), PageRequests::Take::kQueued);
      EXPECT_EQ(requests.ask(250, ahead), PageRequests::Take::kAlreadyAsked);
      EXPECT_EQ(requests.ask(101, ahead), PageRequests::Take::kAlreadySent) << "on its way with the round";
      EXPECT_EQ(requests.ask(350, ahead), PageRequests::Take::kNotInRound);
      EXPECT_EQ(requests.ask(5, ahead), PageRequests::Take::kNotInRound) << "another stream's";
    }
  });
  ASSERT_EQ(sent.size(), 200u) << "every page once";
  EXPECT_EQ(std::vector<std::uint64_t>(sent.begin() + 4, sent.begin() + 6), (std::vector<std::uint64_t>{180, 250}))
      << "asked pages right after the step that asked, in page order";
  std::vector<std::uint64_t> sorted = sent;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, round);
}

TEST(PageRequests, AFloodFillsTheQueueAndTheRestWaitForTheRound) {
  std::vector<std::uint64_t> round(4000);
  std::iota(round.begin(), round.end(), 0);
  PageRequests requests;
  requests.begin(round, 0, 4000);
  std::size_t full = 0;
  for (std::uint64_t page = 3999; page >= 1; --page) full += requests.ask(page, round) == PageRequests::Take::kFull;
  EXPECT_EQ(full, 3999 - PageRequests::kMaxWaiting);
  const auto sent = send_all(requests, round, 16, [](std::size_t, std::span<const std::uint64_t>) {});
  ASSERT_EQ(sent.size(), 4000u);
  EXPECT_EQ(sent.front(), 4000 - PageRequests::kMaxWaiting) << "the queued ones, lowest first";
}

// A page sent on request that the destination then refused goes again with the resend:
// forgotten as served, the round no longer skips it.
TEST(PageRequests, APageForgottenIsNoLongerSkipped) {
  std::vector<std::uint64_t> round{10, 11, 12, 13};
  PageRequests requests;
  requests.begin(round, 10, 14);
  ASSERT_EQ(requests.ask(12, round), PageRequests::Take::kQueued);
  requests.taken(requests.requested().size());
  std::span<const std::uint64_t> ahead = round;
  EXPECT_EQ(requests.unserved_prefix(&ahead), 2u) << "10 and 11, then 12 was sent";
  requests.forget(12);
  requests.forget(99);  // not this stream's: nothing
  ahead = round;
  EXPECT_EQ(requests.unserved_prefix(&ahead), 4u);
}

TEST(PageRequests, NotServingTakesNothingAndLimitsNothing) {
  PageRequests requests;
  std::vector<std::uint64_t> round{1, 2, 3};
  EXPECT_EQ(requests.ask(2, round), PageRequests::Take::kNotInRound);
  std::span<const std::uint64_t> ahead = round;
  EXPECT_EQ(requests.unserved_prefix(&ahead), 3u);
  EXPECT_TRUE(requests.idle());
}

}  // namespace
}  // namespace pagewire::transport
