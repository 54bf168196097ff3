#include "pagewire/bench/postcopy_bench.hpp"

#include "median.hpp"

#include <algorithm>
#include <atomic>
#include <optional>
#include <ostream>
#include <string>
#include <thread>

#include "pagewire/migration/destination_migration.hpp"
#include "pagewire/migration/dirty_log.hpp"
#include "pagewire/migration/source_migration.hpp"
#include "pagewire/rigs/ring_pair.hpp"
#include "pagewire/sim/guest_model.hpp"
#include "pagewire/sim/image.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::bench {

namespace {

constexpr std::uint32_t kPage = 4096;

transport::SessionConfig config_for(const transport::Port& self, const transport::Port& peer, bool source,
                                    std::uint64_t pages) {
  transport::SessionConfig c;
  c.page_size = kPage;
  c.region_pages = pages;
  c.path.local = transport::Endpoint{self.mac(), source ? 0x0a000001u : 0x0a000002u, 47000};
  c.path.peer = transport::Endpoint{peer.mac(), source ? 0x0a000002u : 0x0a000001u, 47000};
  c.emulated_network = true;  // the middlebox stands for a network: congestion control decides the window
  c.resume_window_ms = 60000;
  return c;
}

// The destination: accepts, and from the switch on runs a guest model on its memory.
struct DestinationEnd {
  std::optional<migration::ReceiveReport> report;
  std::string error;
  std::uint64_t guest_writes = 0;
};

void receive(const transport::Port& port, const transport::Port& peer, const migration::MigrationMemory& memory,
             const PostcopyBenchOptions& options, DestinationEnd* end) {
  migration::DestinationDigest digest(memory);
  transport::SessionConfig config = config_for(port, peer, false, memory.pages().pages());
  config.applied_pages = &digest;
  auto session = transport::DestinationSession::accept(config, port, memory.pages());
  if (!session) {
    end->error = session.error().message;
    return;
  }
  migration::DirtyLog log(memory.guest_pages());
  std::optional<sim::GuestModel> guest;
  sim::GuestModelConfig guest_config;
  guest_config.pages_per_second = options.dirty_rate;
  guest_config.pattern = sim::WritePattern::kUniform;
  auto start = [&](const migration::StartingImage& image) -> Status {
    guest.emplace(image.ram.front().host, memory.guest_pages(), kPage, &log, guest_config);
    guest->start();
    return Ok{};
  };
  auto commit = [&](const migration::CommittedImage&) -> Status {
    if (guest) (void)guest->pause();
    return Ok{};
  };
  auto received = migration::DestinationMigration(**session, digest).run(commit, 60000, start);
  if (guest) (void)guest->pause();
  end->guest_writes = guest ? guest->writes() : 0;
  if (received) end->report = *received;
  else end->error = received.error().message;
}

Result<PostcopyBenchRun> run_once(const PostcopyBenchOptions& options, int instance) {
  rigs::LinkImpairment path;
  path.delay_us = static_cast<std::uint32_t>(options.delay_ms * 1000);
  path.rate_bytes_per_second = options.rate_gbps * 1e9 / 8;
  auto link = rigs::RingLink::create("pc" + std::to_string(instance), 1, 9000, 8192, &path);
  if (!link) return link.error();
  const std::uint64_t guest_pages = (options.size_mib << 20) / kPage;
  const std::uint64_t state_pages = migration::state_pages_for(64 << 10, kPage);
  auto source_region = sim::MappedMemory::allocate((guest_pages + state_pages) * kPage);
  auto destination_region = sim::MappedMemory::allocate((guest_pages + state_pages) * kPage);
  if (!source_region || !destination_region) return make_error("cannot map the guest's memory twice");
  if (Status filled = sim::fill_image({source_region->data(), guest_pages * kPage}, kPage, sim::ImageProfile::kIdleVm, 1);
      !filled) {
    return filled.error();
  }
  auto source_memory = migration::MigrationMemory::contiguous(source_region->bytes(), guest_pages, kPage);
  auto destination_memory = migration::MigrationMemory::contiguous(destination_region->bytes(), guest_pages, kPage);
  if (!source_memory || !destination_memory) return make_error("cannot lay out the guest's memory");
  DestinationEnd destination;
  std::thread destination_thread(
      [&] { receive((*link)->b(), (*link)->a(), *destination_memory, options, &destination); });
  auto session = transport::SourceSession::connect(config_for((*link)->a(), (*link)->b(), true, guest_pages + state_pages),
                                                   (*link)->a(), source_memory->pages());
  if (!session) {
    destination_thread.join();
    return session.error();
  }
  migration::DirtyLog log(guest_pages);
  sim::GuestModel guest(source_region->data(), guest_pages, kPage, &log, {});
  guest.start();
  migration::MigrationOptions migration;
  migration.postcopy = migration::MigrationOptions::Postcopy::kNow;
  std::vector<std::byte> device_state(4096, std::byte{1});
  auto report = migration::SourceMigration(**session, *source_memory, guest, log, migration).run(device_state, nullptr);
  destination_thread.join();
  if (!report) return report.error();
  if (!destination.report) return make_error("destination: " + destination.error);
  const migration::PostcopyReceiveReport& received = destination.report->postcopy;
  return PostcopyBenchRun{.pause_ms = report->downtime_ms,
                          .pages_ms = received.pages_ms,
                          .missing_pages = received.missing_pages,
                          .remote_faults = received.remote_faults,
                          .fault_median_us = received.fault_median_us,
                          .fault_p99_us = received.fault_p99_us,
                          .fault_max_us = received.fault_max_us,
                          .guest_writes = destination.guest_writes,
                          .verified = report->verified};
}

template <typename Field>
double median_of(const std::vector<PostcopyBenchRun>& runs, Field field) {
  std::vector<double> values;
  for (const auto& run : runs) values.push_back(static_cast<double>(run.*field));
  return median(values);
}

PostcopyBenchRun medians(const std::vector<PostcopyBenchRun>& runs) {
  using Run = PostcopyBenchRun;
  return Run{.pause_ms = median_of(runs, &Run::pause_ms),
             .pages_ms = median_of(runs, &Run::pages_ms),
             .missing_pages = static_cast<std::uint64_t>(median_of(runs, &Run::missing_pages)),
             .remote_faults = static_cast<std::uint64_t>(median_of(runs, &Run::remote_faults)),
             .fault_median_us = median_of(runs, &Run::fault_median_us),
             .fault_p99_us = median_of(runs, &Run::fault_p99_us),
             .fault_max_us = median_of(runs, &Run::fault_max_us),
             .guest_writes = static_cast<std::uint64_t>(median_of(runs, &Run::guest_writes)),
             .verified = std::all_of(runs.begin(), runs.end(), [](const Run& run) { return run.verified; })};
}

}  // namespace

Result<PostcopyBenchResult> run_postcopy_bench(const PostcopyBenchOptions& options, std::ostream& progress) {
  if (options.size_mib == 0 || options.repeats < 1 || options.delay_ms < 0 || options.rate_gbps < 0) {
    return make_error("bench postcopy: expected --size-mib > 0, --repeats > 0, --delay-ms >= 0, --rate-gbps >= 0");
  }
  static int instance = 0;
  std::vector<PostcopyBenchRun> runs;
  for (int r = 0; r < options.repeats; ++r) {
    auto run = run_once(options, instance++);
    if (!run) return run.error();
    progress << "  run " << r + 1 << ": paused " << run->pause_ms << " ms, " << run->remote_faults
             << " remote faults, median wait " << run->fault_median_us << " us" << std::endl;
    runs.push_back(*run);
  }
  return PostcopyBenchResult{.runs = runs, .median = medians(runs)};
}

}  // namespace pagewire::bench
