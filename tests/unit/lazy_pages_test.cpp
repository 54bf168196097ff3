// Postcopy's destination side (LazyPages) against the bytes: a workload thread touching
// pages the destination does not hold yet stops until a fetcher installs them, then reads
// the source's bytes; pages it held stay as they were; a page installed twice keeps the
// workload's own writes; the background push makes later touches fault-free.
#include "lazy_pages.hpp"
#include "switch_record.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace pagewire::migration {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::uint64_t kPages = 64;

// Private anonymous memory, as a hypervisor's guest RAM is.
struct Region {
  Region() {
    void* mapped = mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(mapped, MAP_FAILED);
    bytes = {static_cast<std::byte*>(mapped), kPages * kPage};
  }
  ~Region() { munmap(bytes.data(), bytes.size()); }
  std::byte* page(std::uint64_t p) const { return bytes.data() + p * kPage; }
  std::span<std::byte> bytes;
};

// The missing pages as LazyPages takes them: runs.
std::vector<PageRun> runs_of(const std::vector<std::uint64_t>& pages) { return runs_covering(pages, SIZE_MAX); }

std::vector<std::byte> filled(std::uint64_t page, std::uint8_t salt) {
  std::vector<std::byte> bytes(kPage);
  for (std::size_t i = 0; i < kPage; ++i) bytes[i] = static_cast<std::byte>((page * 131 + i * 7 + salt) & 0xff);
  return bytes;
}

// The source's pages, and a fetcher thread that installs each page reported missing, as
// the answer to a page request would.
class Fetcher {
 public:
  void missing(std::uint64_t page) {
    std::lock_guard lock(mutex_);
    requests_.push_back(page);
    wake_.notify_one();
  }
  // `delay`: how long a fetch takes (the round trip to the source).
  void serve(LazyPages& lazy, std::chrono::microseconds delay = {}) {
    thread_ = std::thread([&lazy, delay, this] {
      std::unique_lock lock(mutex_);
      while (true) {
        wake_.wait(lock, [&] { return stop_ || !requests_.empty(); });
        if (stop_) return;
        const std::uint64_t page = requests_.front();
        requests_.pop_front();
        lock.unlock();
        std::this_thread::sleep_for(delay);
        const auto done = lazy.install(page, filled(page, 1).data());
        lock.lock();
        if (done && *done == LazyPages::Installed::kInstalled) installed_.push_back(page);
      }
    });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
      wake_.notify_one();
    }
    thread_.join();
  }
  std::vector<std::uint64_t> installed() {
    std::lock_guard lock(mutex_);
    return installed_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::uint64_t> requests_;
  std::vector<std::uint64_t> installed_;
  bool stop_ = false;
  std::thread thread_;
};

TEST(LazyPages, AWorkloadTouchingMissingPagesReadsTheSourcesBytesAndHeldPagesStay) {
  Region region;
  for (std::uint64_t p = 0; p < kPages; ++p) std::memcpy(region.page(p), filled(p, 0).data(), kPage);  // pre-copy
  const std::vector<std::uint64_t> missing = {3, 10, 11, 12, 13, 40, 63};
  Fetcher fetcher;
  auto lazy = LazyPages::start(region.bytes, kPage, runs_of(missing), [&](std::uint64_t page) { fetcher.missing(page); });
  ASSERT_TRUE(lazy.ok()) << lazy.error().message;
  fetcher.serve(**lazy);

  // The workload: reads every page, and writes its own mark into page 10 once it has it.
  std::vector<std::vector<std::byte>> seen(kPages, std::vector<std::byte>(kPage));
  std::thread workload([&] {
    for (std::uint64_t p = 0; p < kPages; ++p) std::memcpy(seen[p].data(), region.page(p), kPage);
    std::memset(region.page(10), 0x5a, 64);
  });
  workload.join();
  for (std::uint64_t p = 0; p < kPages; ++p) {
    const bool was_missing = std::find(missing.begin(), missing.end(), p) != missing.end();
    EXPECT_EQ(seen[p], filled(p, was_missing ? 1 : 0)) << "page " << p;
  }
  EXPECT_EQ((*lazy)->faults(), missing.size()) << "one fault per missing page touched";

  // Fetched again (a request racing the background push): nothing changes.
  const auto again = (*lazy)->install(10, filled(10, 1).data());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, LazyPages::Installed::kAlreadyPresent);
  EXPECT_EQ(static_cast<std::uint8_t>(region.page(10)[0]), 0x5a) << "the workload's write survives";
  fetcher.stop();
  EXPECT_EQ(fetcher.installed(), missing) << "each missing page installed once, as touched";
}

TEST(LazyPages, PagesPushedBeforeTheirTouchDoNotFaultAndZeroPagesInstallAsZero) {
  Region region;
  const std::vector<std::uint64_t> missing = {0, 1, 2, 3};
  std::atomic<int> reported{0};
  auto lazy = LazyPages::start(region.bytes, kPage, runs_of(missing), [&](std::uint64_t) { ++reported; });
  ASSERT_TRUE(lazy.ok()) << lazy.error().message;
  ASSERT_TRUE((*lazy)->install(0, filled(0, 2).data()).ok());
  ASSERT_TRUE((*lazy)->install(1, filled(1, 2).data()).ok());
  ASSERT_TRUE((*lazy)->install_zero(2).ok());
  ASSERT_TRUE((*lazy)->install_zero(3).ok());
  EXPECT_EQ(std::memcmp(region.page(0), filled(0, 2).data(), kPage), 0);
  EXPECT_EQ(std::memcmp(region.page(1), filled(1, 2).data(), kPage), 0);
  const std::vector<std::byte> zero(kPage);
  EXPECT_EQ(std::memcmp(region.page(2), zero.data(), kPage), 0);
  EXPECT_EQ((*lazy)->faults(), 0u);
  EXPECT_EQ(reported.load(), 0);
  const auto twice = (*lazy)->install_zero(2);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(*twice, LazyPages::Installed::kAlreadyPresent);
}

// Each touched page waited at least as long as its fetch took; pages pushed before any touch
// waited for nothing and are not counted.
// Runs of pages as a record brings them: one call for the run, zero runs without bytes,
// and a run in which a page is there already (asked for and pushed both) fills the others
// and leaves that one as the guest wrote it.
TEST(LazyPages, RunsInstallInOneCallAndAPagePresentAlreadyKeepsItsBytes) {
  Region region;
  std::vector<std::uint64_t> missing;
  for (std::uint64_t p = 8; p < 40; ++p) missing.push_back(p);
  auto lazy = LazyPages::start(region.bytes, kPage, runs_of(missing), [](std::uint64_t) {});
  ASSERT_TRUE(lazy.ok()) << lazy.error().message;
  std::vector<std::byte> run(16 * kPage);
  for (std::uint64_t k = 0; k < 16; ++k) std::memcpy(run.data() + k * kPage, filled(8 + k, 1).data(), kPage);
  auto installed = (*lazy)->install_run(8, 16, run.data());
  ASSERT_TRUE(installed.ok()) << installed.error().message;
  EXPECT_EQ(*installed, 16u);
  ASSERT_TRUE((*lazy)->install(30, filled(30, 2).data()).ok());
  region.page(30)[0] = std::byte{0x77};  // the guest's write after the page came
  std::vector<std::byte> zeros_expected(kPage);
  auto zeroed = (*lazy)->install_run(24, 4, nullptr);
  ASSERT_TRUE(zeroed.ok());
  EXPECT_EQ(*zeroed, 4u);
  std::vector<std::byte> later(12 * kPage);
  for (std::uint64_t k = 0; k < 12; ++k) std::memcpy(later.data() + k * kPage, filled(28 + k, 3).data(), kPage);
  auto rest = (*lazy)->install_run(28, 12, later.data());
  ASSERT_TRUE(rest.ok()) << rest.error().message;
  EXPECT_EQ(*rest, 11u) << "page 30 was there";
  for (std::uint64_t p = 8; p < 24; ++p) EXPECT_EQ(std::memcmp(region.page(p), filled(p, 1).data(), kPage), 0) << p;
  for (std::uint64_t p = 24; p < 28; ++p) EXPECT_EQ(std::memcmp(region.page(p), zeros_expected.data(), kPage), 0) << p;
  for (std::uint64_t p = 28; p < 40; ++p) {
    if (p == 30) continue;
    EXPECT_EQ(std::memcmp(region.page(p), filled(p, 3).data(), kPage), 0) << p;
  }
  EXPECT_EQ(region.page(30)[0], std::byte{0x77});
  EXPECT_EQ(std::memcmp(region.page(30) + 1, filled(30, 2).data() + 1, kPage - 1), 0);
  EXPECT_EQ((*lazy)->faults(), 0u);
}

TEST(LazyPages, RemoteFaultLatenciesAreWhatTheTouchersWaited) {
  Region region;
  const std::vector<std::uint64_t> missing = {1, 2, 3, 4, 5, 6, 7, 8};
  Fetcher fetcher;
  auto lazy = LazyPages::start(region.bytes, kPage, runs_of(missing), [&](std::uint64_t page) { fetcher.missing(page); });
  ASSERT_TRUE(lazy.ok()) << lazy.error().message;
  ASSERT_TRUE((*lazy)->install(8, filled(8, 1).data()).ok());  // the background push got there first
  fetcher.serve(**lazy, std::chrono::milliseconds(2));
  std::thread workload([&] {
    for (std::uint64_t p = 1; p <= 8; ++p) EXPECT_EQ(std::memcmp(region.page(p), filled(p, 1).data(), kPage), 0);
  });
  workload.join();
  fetcher.stop();
  const LazyPages::Latencies waited = (*lazy)->latencies();
  EXPECT_EQ(waited.count, 7u);
  EXPECT_EQ((*lazy)->faults(), 7u);
  EXPECT_GE(waited.median_us, 2000 * 7 / 8) << "within an eighth below the 2 ms each fetch took";
  EXPECT_GE(waited.p99_us, waited.median_us);
  EXPECT_GE(waited.max_us, 2000);
  EXPECT_GE(waited.max_us, waited.p99_us);
}

// A guest's RAM blocks each keep their own waits: together they give the percentiles of
// all of them, not of the busiest block.
TEST(WaitHistogram, BlocksAddUpToThePercentilesOfAllTheirWaits) {
  WaitHistogram fast, slow;
  for (int i = 0; i < 90; ++i) fast.add(100'000);      // 100 us
  for (int i = 0; i < 10; ++i) slow.add(50'000'000);   // 50 ms
  const std::array<const WaitHistogram*, 2> both{&fast, &slow};
  const WaitSummary all = WaitHistogram::summarize(both);
  EXPECT_EQ(all.count, 100u);
  EXPECT_NEAR(all.median_us, 100, 100.0 / 8);
  EXPECT_NEAR(all.p99_us, 50'000, 50'000.0 / 8);
  EXPECT_DOUBLE_EQ(all.max_us, 50'000);
  EXPECT_EQ(fast.summary().count, 90u);
  EXPECT_NEAR(fast.summary().p99_us, 100, 100.0 / 8);
  EXPECT_EQ(WaitHistogram().summary().count, 0u);
}

TEST(LazyPages, PagesOutsideTheRegionAndBadRegionsAreRefusedWithWhy) {
  Region region;
  const std::vector<PageRun> none;
  auto lazy = LazyPages::start(region.bytes, kPage, none, [](std::uint64_t) {});
  ASSERT_TRUE(lazy.ok()) << lazy.error().message;
  const auto outside = (*lazy)->install(kPages, filled(0, 0).data());
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().message, "postcopy: page 64 is outside the region of 64 pages");
  EXPECT_FALSE((*lazy)->install_zero(~std::uint64_t{0}).ok());

  const std::vector<PageRun> beyond = {{5, 1}, {63, 2}};
  const auto refused = LazyPages::start(region.bytes, kPage, beyond, [](std::uint64_t) {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message,
            "postcopy: missing pages 63 +2 are empty, out of order or outside the region of 64 pages");
  const std::vector<PageRun> backwards = {{10, 2}, {11, 1}};
  EXPECT_FALSE(LazyPages::start(region.bytes, kPage, backwards, [](std::uint64_t) {}).ok());
  const auto unaligned = LazyPages::start(region.bytes.subspan(100, kPage), kPage, none, [](std::uint64_t) {});
  ASSERT_FALSE(unaligned.ok());
  EXPECT_EQ(unaligned.error().code, ErrorCode::kConfiguration);
}

}  // namespace
}  // namespace pagewire::migration
