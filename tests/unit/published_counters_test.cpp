// Published counters: a reader on another thread never sees a half-written snapshot, and
// always the latest complete one once the writer stops.
#include "pagewire/transport/published_counters.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace pagewire::transport {
namespace {

StreamSnapshot all_fields(std::uint64_t value) {
  StreamSnapshot snapshot;
  snapshot.stream.frames_sent = value;
  snapshot.stream.srtt_us = value;
  snapshot.stream.drops.fill(value);
  snapshot.pages.fill(value);
  snapshot.stream.record_errors = value;
  return snapshot;
}

TEST(PublishedCounters, ReadersNeverSeeATornSnapshot) {
  PublishedCounters published;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (std::uint64_t value = 1; value <= 200000; ++value) published.publish(all_fields(value));
    done = true;
  });
  std::uint64_t reads = 0, last = 0;
  while (!done) {
    const StreamSnapshot seen = published.read();
    const std::uint64_t value = seen.stream.frames_sent;
    ASSERT_EQ(seen.stream.srtt_us, value);
    ASSERT_EQ(seen.stream.record_errors, value);
    ASSERT_EQ(seen.stream.drops.back(), value);
    ASSERT_EQ(seen.pages.back(), value);
    ASSERT_GE(value, last) << "a reader went back in time";
    last = value;
    ++reads;
  }
  writer.join();
  EXPECT_EQ(published.read().stream.frames_sent, 200000u);
  EXPECT_GT(reads, 0u);
}

}  // namespace
}  // namespace pagewire::transport
