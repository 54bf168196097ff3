// The guest model: its dirty log misses no write, a pause really stops it, and a recorded
// trace replays exactly the pages it names. Trace files are hostile input.
#include "pagewire/sim/guest_model.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

namespace pagewire::sim {
namespace {

using migration::DirtyLog;

std::vector<std::uint64_t> collected(migration::DirtyLog& log) {
  migration::DirtyPages marked(log.pages());
  EXPECT_TRUE(log.collect(marked).ok());
  std::vector<std::uint64_t> pages;
  marked.drain(&pages);
  return pages;
}

constexpr std::uint32_t kPage = 4096;

std::string write_file(const std::string& text) {
  char path[] = "/tmp/pagewire-trace-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  std::ofstream(path) << text;
  close(fd);
  return path;
}

TEST(DirtyTrace, LoadsCommentsBlankLinesAndOptionalByteCounts) {
  const std::string path = write_file("# a recorded guest\n0 3\n\n100 7 4096  # a whole page\n250 3 16\n");
  auto trace = load_dirty_trace(path, 8, kPage);
  ASSERT_TRUE(trace.ok()) << trace.error().message;
  ASSERT_EQ(trace->writes.size(), 3u);
  EXPECT_EQ(trace->writes[1].page, 7u);
  EXPECT_EQ(trace->writes[1].bytes, 4096u);
  EXPECT_EQ(trace->writes[0].bytes, 0u) << "no byte count: the model's default";
  EXPECT_EQ(trace->period_us, 250u);
  std::remove(path.c_str());
}

TEST(DirtyTrace, RefusesHostileLinesNamingTheLine) {
  const struct {
    const char* text;
    const char* expected;
  } cases[] = {
      {"0 3\n10 8\n", ":2: page 8 is outside the guest's 8 pages"},
      {"10 1\n5 2\n", ":2: time goes backwards"},
      {"0 1 0\n", ":1: 0 bytes: expected 1..4096"},
      {"0 1 5000\n", ":1: 5000 bytes"},
      {"zero one\n", ":1: expected '<microseconds> <page> [<bytes>]'"},
      {"0 1 16 extra\n", ":1: unexpected 'extra'"},
      {"# nothing\n", "no writes in it"},
  };
  for (const auto& c : cases) {
    const std::string path = write_file(c.text);
    auto trace = load_dirty_trace(path, 8, kPage);
    ASSERT_FALSE(trace.ok()) << c.text;
    EXPECT_NE(trace.error().message.find(c.expected), std::string::npos) << trace.error().message;
    std::remove(path.c_str());
  }
  EXPECT_FALSE(load_dirty_trace("/nonexistent/trace", 8, kPage).ok());
}

TEST(GuestModel, ReplaysExactlyThePagesOfATrace) {
  const std::string path = write_file("0 2\n1000 5\n2000 11\n3000 5\n");
  auto trace = load_dirty_trace(path, 16, kPage);
  ASSERT_TRUE(trace.ok());
  std::vector<std::byte> memory(16 * kPage);
  migration::DirtyLog log(16);
  GuestModel guest(memory.data(), 16, kPage, &log, {.bytes_per_write = 32, .trace = &*trace});
  guest.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // several loops of the 3 ms trace
  ASSERT_TRUE(guest.pause().ok());
  std::vector<std::uint64_t> dirty = collected(log);
  EXPECT_EQ(std::set<std::uint64_t>(dirty.begin(), dirty.end()), (std::set<std::uint64_t>{2, 5, 11}));
  for (std::uint64_t page = 0; page < 16; ++page) {
    bool written = false;
    for (std::size_t i = 0; i < kPage; ++i) written |= memory[page * kPage + i] != std::byte{0};
    EXPECT_EQ(written, page == 2 || page == 5 || page == 11) << "page " << page;
  }
  std::remove(path.c_str());
}

TEST(GuestModel, PauseStopsEveryWriteAndTheLogMissesNone) {
  std::vector<std::byte> memory(256 * kPage);
  migration::DirtyLog log(256);
  GuestModel guest(memory.data(), 256, kPage, &log,
                   {.pages_per_second = 200000, .pattern = WritePattern::kUniform, .bytes_per_write = 8});
  guest.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(guest.pause().ok());
  const std::uint64_t writes = guest.writes();
  std::vector<std::byte> snapshot = memory;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(guest.writes(), writes) << "no write while paused";
  EXPECT_TRUE(snapshot == memory);
  // Every page that differs from zero was logged as dirty.
  std::vector<std::uint64_t> dirty = collected(log);
  const std::set<std::uint64_t> logged(dirty.begin(), dirty.end());
  for (std::uint64_t page = 0; page < 256; ++page) {
    bool written = false;
    for (std::size_t i = 0; i < kPage && !written; ++i) written = memory[page * kPage + i] != std::byte{0};
    if (written) {
      EXPECT_TRUE(logged.count(page)) << "page " << page << " was written but not logged";
    }
  }
  guest.resume();
}

}  // namespace
}  // namespace pagewire::sim
