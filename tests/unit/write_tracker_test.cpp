// The userfaultfd write tracker against the bytes themselves: what it reports is exactly
// what was written, and a copy kept current from its reports alone ends byte-equal to
// memory that another thread wrote throughout, collections included.
#include "pagewire/migration/write_tracker.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace pagewire::migration {
namespace {

// Private anonymous memory in 4 KiB pages (no transparent huge pages, whose written state
// comes in 2 MiB units), populated or not.
class Region {
 public:
  Region(std::size_t pages, bool populate) : bytes_(pages * page_size()) {
    void* at = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(at, MAP_FAILED);
    data_ = static_cast<std::byte*>(at);
    madvise(data_, bytes_, MADV_NOHUGEPAGE);
    if (populate) std::memset(data_, 0x5a, bytes_);
  }
  ~Region() { munmap(data_, bytes_); }
  std::span<std::byte> span() { return {data_, bytes_}; }
  std::byte* page(std::uint64_t p) { return data_ + p * page_size(); }
  static std::size_t page_size() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

 private:
  std::size_t bytes_;
  std::byte* data_ = nullptr;
};

// Every test runs in both modes: asynchronous (the kernel marks written pages) and the
// synchronous fallback (a handler thread resolves each first write's fault).
class WriteTrackerIn : public ::testing::TestWithParam<WriteTracking> {};

std::string mode_name(const ::testing::TestParamInfo<WriteTracking>& info) {
  return info.param == WriteTracking::kAsynchronous ? "Asynchronous" : "Synchronous";
}

WriteTracker start_or_fail(Region& region, WriteTracking mode) {
  auto tracker = WriteTracker::create(region.span(), Region::page_size(), mode);
  if (!tracker) ADD_FAILURE() << tracker.error().message;
  EXPECT_EQ(tracker->mode(), mode);
  return std::move(tracker).value();
}

std::vector<std::uint64_t> collected(WriteTracker& tracker) {
  DirtyPages marked(tracker.pages());
  const Status status = tracker.collect(marked);
  EXPECT_TRUE(status.ok()) << status.error().message;
  std::vector<std::uint64_t> pages;
  marked.drain(&pages);
  return pages;
}

TEST_P(WriteTrackerIn, ReportsExactlyThePagesWrittenSinceTheLastLook) {
  Region region(1024, true);
  WriteTracker tracker = start_or_fail(region, GetParam());
  EXPECT_TRUE(collected(tracker).empty()) << "nothing written yet";
  for (std::uint64_t p : {100u, 3u, 7u, 1023u}) *region.page(p) = std::byte{1};
  region.page(7)[4095] = std::byte{2};  // a second write to a page already written
  EXPECT_EQ(collected(tracker), (std::vector<std::uint64_t>{3, 7, 100, 1023}));
  EXPECT_TRUE(collected(tracker).empty()) << "a look counts the pages clean again";
  volatile std::byte read = *region.page(500);  // reading is not writing
  (void)read;
  *region.page(3) = std::byte{9};
  EXPECT_EQ(collected(tracker), (std::vector<std::uint64_t>{3})) << "protected again after the look";
}

TEST_P(WriteTrackerIn, FirstWritesToPagesNeverTouchedAreSeen) {
  Region region(256, false);
  WriteTracker tracker = start_or_fail(region, GetParam());
  *region.page(5) = std::byte{1};
  region.page(200)[17] = std::byte{1};
  EXPECT_EQ(collected(tracker), (std::vector<std::uint64_t>{5, 200}));
}

TEST(WriteTracker, RefusesMemoryThatIsNotWholePages) {
  Region region(4, true);
  EXPECT_FALSE(WriteTracker::create(region.span().subspan(1, Region::page_size()), Region::page_size()).ok());
  EXPECT_FALSE(WriteTracker::create({}, Region::page_size()).ok());
  EXPECT_FALSE(WriteTracker::create(region.span(), Region::page_size() / 2).ok());
}

// Migration pages of twice the system's: a write anywhere in either half reports the page.
TEST_P(WriteTrackerIn, ReportsInTheMigrationsPageSize) {
  Region region(64, true);
  auto tracker = WriteTracker::create(region.span(), 2 * Region::page_size(), GetParam());
  ASSERT_TRUE(tracker.ok()) << tracker.error().message;
  ASSERT_TRUE(tracker->start().ok());
  *region.page(5) = std::byte{1};   // second half of page 2
  *region.page(40) = std::byte{1};  // first half of page 20
  EXPECT_EQ(collected(*tracker), (std::vector<std::uint64_t>{2, 20}));
}

// Pre-copy in miniature with a live writer: a copy updated only with the pages each look
// reports, and at the end (writer stopped) with the last look's, equals the memory.
TEST_P(WriteTrackerIn, MissesNoWriteUnderAConcurrentWriter) {
  constexpr std::size_t kPages = 16384;  // 64 MiB
  Region region(kPages, true);
  std::vector<std::byte> copy(region.span().begin(), region.span().end());
  WriteTracker tracker = start_or_fail(region, GetParam());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> writes{0};
  std::thread writer([&] {
    std::mt19937_64 rng(11);
    for (std::uint64_t n = 1; !stop.load(std::memory_order_relaxed); ++n) {
      const std::uint64_t page = rng() % kPages;
      const std::size_t offset = (rng() % (Region::page_size() / 8)) * 8;
      std::memcpy(region.page(page) + offset, &n, sizeof n);
      writes.store(n, std::memory_order_relaxed);
    }
  });
  std::uint64_t reported = 0;
  auto catch_up = [&] {
    for (std::uint64_t p : collected(tracker)) {
      std::memcpy(copy.data() + p * Region::page_size(), region.page(p), Region::page_size());
      ++reported;
    }
  };
  // A look every 2 ms, as rounds of a migration look, only far more often, until the writer
  // has written 20,000 times across at least 50 looks: a count, not a time, since a write
  // to a page protected again costs a fault (15 us on this VM, more on a loaded machine).
  int looks = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((looks < 50 || writes.load() < 20000) && std::chrono::steady_clock::now() < give_up) {
    catch_up();
    ++looks;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop.store(true);
  writer.join();
  catch_up();
  ASSERT_GE(writes.load(), 20000u) << "the writer was starved for a minute";
  EXPECT_GT(reported, 1000u);
  std::size_t differing = 0;
  for (std::size_t p = 0; p < kPages; ++p) {
    differing += std::memcmp(copy.data() + p * Region::page_size(), region.page(p), Region::page_size()) != 0;
  }
  EXPECT_EQ(differing, 0u) << "pages written but never reported";
}

// A guest's RAM blocks tracked as one (track_writes): each block's pages are reported at
// their place in the migration's numbering, the blocks wherever they were mapped.
TEST_P(WriteTrackerIn, BlocksReportPagesNumberedAcrossThem) {
  Region low(100, true), high(300, false);
  const RamBlock ram[] = {{high.span().data(), high.span().size()}, {low.span().data(), low.span().size()}};
  auto group = track_writes(ram, Region::page_size(), GetParam());
  ASSERT_TRUE(group.ok()) << group.error().message;
  EXPECT_EQ(group->size(), 2u);
  ASSERT_TRUE(group->start().ok());
  *high.page(0) = std::byte{1};
  high.page(299)[5] = std::byte{1};
  *low.page(0) = std::byte{1};
  *low.page(99) = std::byte{1};
  DirtyPages marked(400);
  ASSERT_TRUE(group->collect(marked).ok());
  std::vector<std::uint64_t> pages;
  marked.drain(&pages);
  EXPECT_EQ(pages, (std::vector<std::uint64_t>{0, 299, 300, 399}));
  ASSERT_TRUE(group->collect(marked).ok());
  marked.drain(&pages);
  EXPECT_EQ(pages.size(), 4u) << "a look counts every block's pages clean again";
}

// A tracker that records what is asked of it, and fails to start when told to.
class ScriptedTracker final : public DirtyTracker {
 public:
  ScriptedTracker(std::vector<std::string>* calls, std::string name, bool fails, bool protects)
      : calls_(calls), name_(std::move(name)), fails_(fails), protects_(protects) {}
  Status start() override {
    calls_->push_back(name_ + " start");
    return fails_ ? Status{make_error("KVM_MEM_LOG_DIRTY_PAGES refused")} : Status{Ok{}};
  }
  Status collect(DirtyPages&) override { return Ok{}; }
  void stop() override { calls_->push_back(name_ + " stop"); }
  bool protects_pages_in_flight() const override { return protects_; }

 private:
  std::vector<std::string>* calls_;
  std::string name_;
  bool fails_, protects_;
};

TEST(TrackerGroup, StartsAllOrNone) {
  std::vector<std::string> calls;
  TrackerGroup group;
  group.add(std::make_unique<ScriptedTracker>(&calls, "a", false, true));
  group.add(std::make_unique<ScriptedTracker>(&calls, "b", false, true));
  group.add(std::make_unique<ScriptedTracker>(&calls, "c", true, true));
  const Status started = group.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().message.find("refused"), std::string::npos);
  EXPECT_EQ(calls, (std::vector<std::string>{"a start", "b start", "c start", "b stop", "a stop"}));
}

TEST(TrackerGroup, ProtectsPagesInFlightOnlyWhenEveryTrackerDoes) {
  std::vector<std::string> calls;
  TrackerGroup group;
  EXPECT_FALSE(group.protects_pages_in_flight()) << "an empty group promises nothing";
  group.add(std::make_unique<ScriptedTracker>(&calls, "a", false, true));
  EXPECT_TRUE(group.protects_pages_in_flight());
  group.add(std::make_unique<ScriptedTracker>(&calls, "b", false, false));
  EXPECT_FALSE(group.protects_pages_in_flight());
}

INSTANTIATE_TEST_SUITE_P(Modes, WriteTrackerIn,
                         ::testing::Values(WriteTracking::kAsynchronous, WriteTracking::kSynchronous), mode_name);

}  // namespace
}  // namespace pagewire::migration
