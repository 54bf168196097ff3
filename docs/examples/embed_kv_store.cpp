// Migrates a live workload with pagewire's C++ API: an in-memory key-value store that a load
// thread keeps writing, tracked by userfaultfd write-protection (no guest model, no dirty
// log the workload marks itself). Run the destination first, then the source:
//   embed_kv_store destination net_memif0,role=server,socket=/tmp/kv.sock received.img
//   embed_kv_store source      net_memif0,role=client,socket=/tmp/kv.sock sent.img
// Each writes its copy of the store to the file once the migration is done: byte-equal.
#include <sys/mman.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <pagewire/pagewire.hpp>
#include <string>
#include <thread>

namespace mig = pagewire::migration;

constexpr std::uint32_t kPage = 4096;
constexpr std::uint64_t kGuestPages = 16384;  // 64 MiB
constexpr std::uint64_t kSlots = kGuestPages * kPage / 32;

struct Entry {  // 32 bytes; a slot's value always matches its key and version
  std::uint64_t key, version, value, check;
};

// The workload: puts into an open-addressed table, as fast as it can, until paused.
class KvStore final : public mig::GuestControl {
 public:
  explicit KvStore(std::byte* memory) : table_(reinterpret_cast<Entry*>(memory)) {}
  void start() { thread_ = std::thread([this] { load(); }); }
  ~KvStore() {
    stop_ = true;
    thread_.join();
  }
  pagewire::Status pause() override {  // once the lock is ours, no put is in progress
    std::lock_guard hold(lock_);
    paused_ = true;
    return pagewire::Ok{};
  }
  void resume() override {
    std::lock_guard hold(lock_);
    paused_ = false;
  }
  pagewire::Status set_throttle(double) override { return pagewire::Ok{}; }
  std::uint64_t puts() const { return puts_; }

 private:
  void load() {
    for (std::uint64_t n = 1; !stop_; ++n) {
      std::lock_guard hold(lock_);
      if (paused_) continue;
      const std::uint64_t key = (n * 0x9e3779b97f4a7c15ULL) % (kSlots / 2);
      Entry& slot = table_[(key * 2654435761ULL) % kSlots];
      slot = Entry{key, n, key ^ n, key + n};
      puts_.store(n, std::memory_order_relaxed);
    }
  }
  Entry* table_;
  std::mutex lock_;
  bool paused_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> puts_{0};
  std::thread thread_;
};

bool save(const std::string& path, const std::byte* memory) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(memory), kGuestPages * kPage);
  return static_cast<bool>(out);
}

int fail(const char* what, const pagewire::Error& error) {
  std::fprintf(stderr, "%s: %s (code %d)\n", what, error.message.c_str(), static_cast<int>(error.code));
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 4) return std::fprintf(stderr, "usage: %s source|destination VDEV FILE\n", argv[0]), 2;
  const bool source = std::strcmp(argv[1], "source") == 0;
  mig::LinkConfig config;
  config.vdev = argv[2];
  config.name = argv[1];
  config.local_ip = *mig::parse_ipv4(source ? "10.0.0.1" : "10.0.0.2", "local");
  config.peer_ip = *mig::parse_ipv4(source ? "10.0.0.2" : "10.0.0.1", "peer");
  config.timeout_ms = 30000;
  auto link = mig::Link::open(config);
  if (!link) return fail("link", link.error());
  const std::uint64_t pages = kGuestPages + mig::state_pages_for(4096, kPage);
  void* mapped = mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return std::perror("mmap"), 1;
  std::span memory(static_cast<std::byte*>(mapped), pages * kPage);
  if (auto up = link->await_up(30000); !up) return fail("link", up.error());

  if (!source) {
    std::memset(memory.data(), 0, memory.size());  // pre-fault: first touches cost time
    auto destination = mig::Destination::accept(*link, memory, kGuestPages, kPage);
    if (!destination) return fail("accept", destination.error());
    auto received = destination->run([&](const mig::CommittedImage& image) -> pagewire::Status {
      if (!save(argv[3], image.ram.front().host)) {  // accepted into one block
        return pagewire::make_error(pagewire::ErrorCode::kSystem, std::string("cannot write ") + argv[3]);
      }
      return pagewire::Ok{};  // a hypervisor would start the guest's vCPUs here
    });
    if (!received) return fail("destination", received.error());
    std::printf("destination: committed, digest %s\n", received->digest.c_str());
    return 0;
  }
  auto tracker = mig::WriteTracker::create(memory.first(kGuestPages * kPage), kPage);
  if (!tracker) return fail("tracker", tracker.error());
  KvStore store(memory.data());
  store.start();
  auto connected = mig::Source::connect(*link, memory, kGuestPages, kPage, {});
  if (!connected) return fail("connect", connected.error());
  const char state[] = "kv-store registers";
  auto report = connected->run(store, *tracker, std::as_bytes(std::span(state)), [](const mig::RoundReport& r) {
    std::printf("round %u: %llu pages, %llu dirtied meanwhile\n", r.round, static_cast<unsigned long long>(r.pages),
                static_cast<unsigned long long>(r.dirty_pages));
  });
  if (!report) return fail("source", report.error());
  std::printf("source: migrated %llu puts' worth, downtime %.1f ms, digest %s\n",
              static_cast<unsigned long long>(store.puts()), report->downtime_ms, report->digest.c_str());
  return save(argv[3], memory.data()) ? 0 : 1;  // the store stays paused: it runs on the destination
}
