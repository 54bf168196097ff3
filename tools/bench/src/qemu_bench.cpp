#include "pagewire/bench/qemu_bench.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <thread>

#include "pagewire/bench/child_process.hpp"
#include "pagewire/bench/qmp_client.hpp"

namespace pagewire::bench {

namespace {

constexpr const char* kPagewire = "pagewire";
constexpr int kQmpConnectMs = 120000;  // the destination preallocates its RAM first
constexpr int kMigrationLimitS = 600;

std::string qemu_label(unsigned channels) {
  return channels <= 1 ? "qemu 1 channel" : "qemu " + std::to_string(channels) + " multifd channels";
}

bool on_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::stringstream directories(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    if (access((directory + "/" + program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Where one run keeps its sockets and files; removed when it ends, however it ends.
struct RunFiles {
  explicit RunFiles(const std::string& memory_directory) {
    const std::string tag = std::to_string(getpid());
    source_qmp = "/tmp/pagewire-bench-qemu-" + tag + "-src.qmp";
    destination_qmp = "/tmp/pagewire-bench-qemu-" + tag + "-dst.qmp";
    destination_memory = memory_directory + "/pagewire-bench-qemu-" + tag + "-dst.ram";
    memif_socket = "/tmp/pagewire-bench-qemu-" + tag + ".sock";
    remove();
  }
  ~RunFiles() { remove(); }
  void remove() const {
    std::error_code ignored;
    for (const auto& path : {source_qmp, destination_qmp, destination_memory, memif_socket}) {
      std::filesystem::remove(path, ignored);
    }
  }
  std::string source_qmp, destination_qmp, destination_memory, memif_socket;
};

std::vector<std::string> qemu_arguments(std::uint64_t mib, const std::string& memory, const std::string& qmp) {
  const std::string size = std::to_string(mib) + "M";
  return {"-machine", "q35,memory-backend=mem", "-m", size, "-nographic", "-nodefaults", "-display", "none", "-S",
          "-qmp", "unix:" + qmp + ",server=on,wait=off", "-object",
          "memory-backend-file,id=mem,size=" + size + ",mem-path=" + memory};
}

Status configure_channels(QmpClient& qmp, unsigned channels) {
  if (channels <= 1) return Ok{};
  auto multifd = qmp.execute("migrate-set-capabilities",
                             {{"capabilities", {{{"capability", "multifd"}, {"state", true}}}}});
  if (!multifd) return multifd.error();
  auto count = qmp.execute("migrate-set-parameters", {{"multifd-channels", channels}});
  if (!count) return count.error();
  return Ok{};
}

// query-migrate until it completes; its figures.
Result<QemuBenchRun> await_qemu(QmpClient& source) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kMigrationLimitS);
  for (;;) {
    auto state = source.execute("query-migrate");
    if (!state) return state.error();
    const std::string status = state->value("status", "");
    if (status == "completed") {
      QemuBenchRun run;
      run.total_seconds = state->value("total-time", 0.0) / 1000;
      run.downtime_ms = state->value("downtime", 0.0);
      if (state->contains("ram")) run.wire_bytes = (*state)["ram"].value("transferred", std::uint64_t{0});
      return run;
    }
    if (status == "failed" || status == "cancelled") {
      return make_error("QEMU's migration " + status + ": " + state->value("error-desc", "no reason given"));
    }
    if (std::chrono::steady_clock::now() > deadline) return make_error("QEMU's migration still " + status);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<QemuBenchRun> run_qemu(const QemuBenchOptions& options, std::uint64_t mib, unsigned channels) {
  const RunFiles files(options.memory_directory);
  auto destination_args = qemu_arguments(mib, files.destination_memory, files.destination_qmp);
  destination_args.back() += ",share=on,prealloc=on";
  destination_args.insert(destination_args.end(), {"-incoming", "defer"});
  auto source_args = qemu_arguments(mib, options.image, files.source_qmp);
  source_args.back() += ",share=off";
  auto destination = ChildProcess::start(options.qemu, destination_args, ChildProcess::Output::kDiscard);
  if (!destination) return destination.error();
  auto source = ChildProcess::start(options.qemu, source_args, ChildProcess::Output::kDiscard);
  if (!source) return source.error();
  auto destination_qmp = QmpClient::connect(files.destination_qmp, kQmpConnectMs);
  if (!destination_qmp) return destination_qmp.error();
  auto source_qmp = QmpClient::connect(files.source_qmp, kQmpConnectMs);
  if (!source_qmp) return source_qmp.error();
  if (auto status = configure_channels(*destination_qmp, channels); !status) return status.error();
  if (auto status = configure_channels(*source_qmp, channels); !status) return status.error();
  // Lift QEMU's bandwidth cap (32 MiB/s by default in 7.2): a loopback link, like memif, has none.
  if (auto lifted = source_qmp->execute("migrate-set-parameters", {{"max-bandwidth", std::uint64_t{1} << 40}});
      !lifted) {
    return lifted.error();
  }
  const std::uint16_t port = options.tcp_port != 0 ? options.tcp_port : static_cast<std::uint16_t>(40000 + getpid() % 20000);
  const std::string uri = "tcp:127.0.0.1:" + std::to_string(port);
  if (auto listening = destination_qmp->execute("migrate-incoming", {{"uri", uri}}); !listening) {
    return listening.error();
  }
  if (auto started = source_qmp->execute("migrate", {{"uri", uri}}); !started) return started.error();
  auto run = await_qemu(*source_qmp);
  if (!run) return run.error();
  run->configuration = qemu_label(channels);
  return run;
}

// The first JSON line of `child`'s output whose "event" is `event`; an error if it ends first.
Result<nlohmann::json> await_event(ChildProcess& child, const std::string& event, const std::string& who) {
  while (auto line = child.read_line()) {
    auto parsed = nlohmann::json::parse(*line, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object() && parsed.value("event", "") == event) return parsed;
  }
  auto status = child.wait();
  return make_error(who + " ended without a \"" + event + "\" event" +
                    (status ? std::string() : ": " + status.error().message));
}

Result<QemuBenchRun> run_pagewire(const QemuBenchOptions& options, std::uint64_t mib) {
  const RunFiles files(options.memory_directory);
  const std::string vdev = "net_memif0,socket=" + files.memif_socket + ",role=";
  auto destination = ChildProcess::start(
      options.pagewire, {"dst", "--vdev", vdev + "server", "--size-mib", std::to_string(mib), "--json"});
  if (!destination) return destination.error();
  if (auto ready = await_event(*destination, "ready", "pagewire dst"); !ready) return ready.error();
  std::vector<std::string> source_args = {"src",          "--vdev", vdev + "client", "--image", options.image,
                                          "--dirty-rate", "0",      "--json"};
  source_args.insert(source_args.end(), options.pagewire_source_args.begin(), options.pagewire_source_args.end());
  auto source = ChildProcess::start(options.pagewire, source_args);
  if (!source) return source.error();
  auto migrated = await_event(*source, "migrated", "pagewire src");
  if (!migrated) return migrated.error();
  if (auto status = source->wait(); !status) return status.error();
  if (auto status = destination->wait(); !status) return make_error("pagewire dst: " + status.error().message);
  QemuBenchRun run;
  run.configuration = kPagewire;
  run.total_seconds = migrated->value("total_seconds", 0.0);
  run.downtime_ms = migrated->value("downtime_ms", 0.0);
  run.wire_bytes = migrated->value("wire_bytes", std::uint64_t{0});
  return run;
}

Metrics metrics_of(const QemuBenchRun& run) {
  return {{"total_seconds", run.total_seconds},
          {"downtime_ms", run.downtime_ms},
          {"wire_mib", static_cast<double>(run.wire_bytes) / (1 << 20)}};
}

// Per configuration: spread of its runs, and for QEMU's, pagewire ÷ it over the pairs where
// both completed.
std::vector<QemuBenchSummary> summarize_runs(const std::vector<std::string>& configurations,
                                             const std::vector<QemuBenchRun>& runs,
                                             const std::map<std::string, std::pair<int, std::string>>& failed) {
  std::vector<QemuBenchSummary> summaries;
  for (const auto& configuration : configurations) {
    QemuBenchSummary summary;
    summary.configuration = configuration;
    std::vector<Metrics> own, ratios;
    for (const auto& run : runs) {
      if (run.configuration != configuration) continue;
      own.push_back(metrics_of(run));
      for (const auto& ours : runs) {
        if (ours.configuration != kPagewire || ours.pair != run.pair || configuration == kPagewire) continue;
        ratios.push_back({{"total", ours.total_seconds / run.total_seconds},
                          {"downtime", ours.downtime_ms / std::max(run.downtime_ms, 1e-3)}});
      }
    }
    summary.runs = static_cast<int>(own.size());
    if (auto it = failed.find(configuration); it != failed.end()) {
      summary.failures = it->second.first;
      summary.last_error = it->second.second;
    }
    if (!own.empty()) {
      auto stats = summarize(own);
      summary.total_seconds = stats["total_seconds"];
      summary.downtime_ms = stats["downtime_ms"];
      summary.wire_mib = stats["wire_mib"];
    }
    if (!ratios.empty()) {
      auto stats = summarize(ratios);
      summary.pagewire_total_ratio = stats["total"].median;
      summary.pagewire_downtime_ratio = stats["downtime"].median;
    }
    summaries.push_back(summary);
  }
  return summaries;
}

}  // namespace

Status ensure_qemu(const std::string& qemu, std::ostream& progress) {
  if (on_path(qemu)) return Ok{};
  if (qemu != "qemu-system-x86_64") return make_error("--qemu " + qemu + ": not found or not executable");
  if (geteuid() != 0) {
    return make_error("QEMU is not installed. As root, run: apt-get install -y --no-install-recommends qemu-system-x86");
  }
  progress << "bench qemu: installing Debian's qemu-system-x86" << std::endl;
  for (const std::vector<std::string>& step :
       {std::vector<std::string>{"apt-get", "update", "-qq"},
        std::vector<std::string>{"apt-get", "install", "-y", "-qq", "--no-install-recommends", "qemu-system-x86"}}) {
    auto apt = ChildProcess::start(step[0], {step.begin() + 1, step.end()}, ChildProcess::Output::kDiscard);
    if (!apt) return apt.error();
    if (auto status = apt->wait(); !status) {
      return make_error("installing qemu-system-x86: " + status.error().message);
    }
  }
  if (!on_path(qemu)) return make_error("qemu-system-x86 installed, but no " + qemu + " on PATH");
  return Ok{};
}

Result<QemuBenchResult> run_qemu_bench(const QemuBenchOptions& options, std::ostream& progress) {
  std::error_code error;
  const std::uint64_t bytes = std::filesystem::file_size(options.image, error);
  if (error || bytes == 0 || bytes % (1 << 20) != 0) {
    return make_error("IMAGE " + options.image + ": expected a non-empty file of a whole number of MiB" +
                      (error ? " (" + error.message() + ")" : ""));
  }
  if (options.pairs < 1) return make_error("--pairs: expected at least 1");
  std::vector<std::string> configurations;
  for (unsigned channels : options.qemu_channels) configurations.push_back(qemu_label(channels));
  configurations.push_back(kPagewire);

  QemuBenchResult result;
  result.image_bytes = bytes;
  std::map<std::string, std::pair<int, std::string>> failed;
  const std::size_t count = configurations.size();
  for (int pair = 0; pair < options.pairs; ++pair) {
    for (std::size_t k = 0; k < count; ++k) {
      const std::size_t which = (k + static_cast<std::size_t>(pair)) % count;  // rotated: none always first
      auto run = which < options.qemu_channels.size()
                     ? run_qemu(options, bytes >> 20, options.qemu_channels[which])
                     : run_pagewire(options, bytes >> 20);
      if (!run) {
        auto& [failures, last] = failed[configurations[which]];
        ++failures;
        last = run.error().message;
        progress << "pair " << pair + 1 << ": " << configurations[which] << " failed: " << last << std::endl;
        continue;
      }
      run->pair = pair;
      progress << "pair " << pair + 1 << ": " << run->configuration << ": " << run->total_seconds << " s, downtime "
               << run->downtime_ms << " ms" << std::endl;
      result.runs.push_back(*run);
    }
  }
  result.summaries = summarize_runs(configurations, result.runs, failed);
  return result;
}

}  // namespace pagewire::bench
