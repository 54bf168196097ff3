// pagewire src | dst | demo: live migration of a reference image between two ends.
#include <boost/program_options.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <rte_ethdev.h>
#include <rte_cycles.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <optional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <thread>

#include "cli/commands.hpp"
#include "cli/control_socket.hpp"
#include "cli/endpoint.hpp"
#include "cli/interrupt_watch.hpp"
#include "cli/json_events.hpp"
#include "pagewire/pinning/bind.hpp"
#include "pagewire/pinning/cpu_claims.hpp"
#include "pagewire/pinning/plan.hpp"
#include "pagewire/sim/guest_model.hpp"
#include "pagewire/migration/digest.hpp"
#include "pagewire/sim/image.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/migration/internal/session_parts.hpp"
#include "pagewire/migration/source_migration.hpp"
#include "pagewire/transport/eal.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/pre_shared_key.hpp"
#include "pagewire/transport/session.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

namespace {

using Clock = std::chrono::steady_clock;

// What checks a migration's bytes on the way and at the end, for the JSON result.
template <typename Session>
nlohmann::json integrity_json(const Session& session, const transport::SessionConfig& config) {
  return {{"udp_checksum", session.udp_checksum_note()},
          {"sealed", config.security.key.has_value()},
          {"region_digest", "XXH3-128 over every 4 KiB block, compared before the commit"}};
}

// How far each stream's window went, and what held it back: the destination's window
// (smaller than --window asked for) or memory (--window-memory-mib, hugepages).
nlohmann::json window_json(const transport::SourceSession& session, std::uint32_t asked) {
  const transport::StreamCounters c = session.totals().streams;
  return {{"asked_frames", asked}, {"peer_window_frames", c.peer_window},
          {"peak_in_flight_frames", c.peak_in_flight}, {"note", session.window_note()}};
}

std::vector<std::string> window_warnings(const transport::SourceSession& session, std::uint32_t asked) {
  std::vector<std::string> warnings;
  const std::uint64_t peer = session.totals().streams.peer_window;
  if (asked != 0 && peer != 0 && asked > peer) {
    warnings.push_back("--window " + std::to_string(asked) + " is larger than the destination accepts (" +
                       std::to_string(peer) + " frames per stream): its window, not --window, limited each stream");
  }
  if (!session.window_note().empty()) warnings.push_back(session.window_note());
  return warnings;
}

nlohmann::json with_record_crc(nlohmann::json integrity, bool crc) {
  integrity["record_crc32c"] = crc;
  return integrity;
}

std::string security_name(const transport::SessionSecurity& security) {
  if (!security.key) return "none";
  return security.encrypt ? "encrypted" : "authenticated";
}

// Which CPU ran each stream the session settled on: the plan's, by the lcore the session gave it.
template <typename Session>
nlohmann::json stream_cores_json(const Session& session, const pinning::Plan& plan) {
  nlohmann::json cores = nlohmann::json::array();
  for (std::uint16_t s = 0; s < session.streams(); ++s) {
    cores.push_back({{"stream", s}, {"lcore", session.stream_lcore(s)}, {"cpu", plan.streams[s].pu}});
  }
  return cores;
}

template <typename Session>
std::string stream_cores_text(const Session& session, const pinning::Plan& plan) {
  std::ostringstream text;
  text << session.streams() << (session.streams() == 1 ? " stream" : " streams")
       << " on lcores of their own, control on cpu " << plan.control.pu << ":";
  for (std::uint16_t s = 0; s < session.streams(); ++s) text << " " << s << "@cpu" << plan.streams[s].pu;
  return text.str();
}

// Whether the delta cache holds the pages that keep coming back: refusals mean it is smaller
// than what each round re-sends (--delta-cache-mib).
nlohmann::json delta_cache_json(const pagecodec::DeltaCacheCounters& c) {
  return {{"hits", c.hits},           {"misses", c.misses},       {"insertions", c.insertions},
          {"evictions", c.evictions}, {"refusals", c.refusals}, {"invalidations", c.invalidations}};
}

std::string encoding_mix(const std::array<std::uint64_t, pagecodec::kEncodingCount>& pages) {
  std::ostringstream out;
  out << pages[1] << "/" << pages[2] << "/" << pages[3] << "/" << pages[4] << "/" << pages[5];
  return out.str();
}

nlohmann::json duplicates_json(const pagecodec::DuplicateCounters& c) {
  return {{"candidates", c.candidates}, {"confirmed", c.confirmed}, {"differed", c.differed},
          {"pending", c.pending}, {"dependencies_full", c.dependencies_full}, {"looked", c.looked}};
}

// On a terminal, one line redrawn in place shows where the current round is; the round's
// line replaces it when the round ends.
class ProgressLine {
 public:
  explicit ProgressLine(std::uint32_t page_size) : page_size_(page_size), shown_(isatty(STDOUT_FILENO) != 0) {}

  void draw(const migration::RoundProgress& p) {
    if (!shown_) return;
    constexpr int kWidth = 32;
    const double done = p.pages == 0 ? 1.0 : static_cast<double>(p.pages_done) / static_cast<double>(p.pages);
    const int filled = static_cast<int>(done * kWidth);
    const double gbps = static_cast<double>(p.pages_done) * page_size_ * 8 / std::max(p.seconds, 1e-9) / 1e9;
    std::cout << "\r  round " << p.round << " [" << std::string(filled, '#') << std::string(kWidth - filled, '.')
              << "] " << std::setw(3) << static_cast<int>(done * 100) << "%  " << p.pages_done << "/" << p.pages
              << " pages  " << std::fixed << std::setprecision(2) << gbps << " Gbit/s\033[K" << std::flush;
    drawn_ = true;
  }
  void clear() {
    if (drawn_) std::cout << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  std::uint32_t page_size_;
  bool shown_;
  bool drawn_ = false;
};

// The control socket, when --control-socket names one (null otherwise).
Result<std::unique_ptr<ControlSocket>> open_control_socket(const std::string& path, ControlSocket::Handlers handlers) {
  if (path.empty()) return std::unique_ptr<ControlSocket>{};
  return ControlSocket::open(path, std::move(handlers));
}

// A control socket's "set": max_gbps (0: no cap) and downtime_limit_ms, each optional, all
// checked before any is applied.
Status apply_settings(const nlohmann::json& request, migration::Source& source) {
  for (const auto& [key, value] : request.items()) {
    if (key != "command" && key != "max_gbps" && key != "downtime_limit_ms") {
      return make_error(ErrorCode::kConfiguration, "\"" + key + "\": expected max_gbps or downtime_limit_ms");
    }
  }
  const auto max_gbps = request.find("max_gbps");
  if (max_gbps != request.end() && (!max_gbps->is_number() || max_gbps->get<double>() < 0)) {
    return make_error(ErrorCode::kConfiguration, "max_gbps: expected a number of Gbit/s, 0 for no cap");
  }
  const auto limit = request.find("downtime_limit_ms");
  if (limit != request.end() && (!limit->is_number_unsigned() || limit->get<std::uint64_t>() == 0 ||
                                 limit->get<std::uint64_t>() > UINT32_MAX)) {
    return make_error(ErrorCode::kConfiguration, "downtime_limit_ms: expected a whole number of milliseconds, at least 1");
  }
  if (max_gbps != request.end()) source.set_max_gbps(max_gbps->get<double>());
  if (limit != request.end()) source.set_downtime_limit_ms(static_cast<std::uint32_t>(limit->get<std::uint64_t>()));
  return Ok{};
}

// Exit codes: 0 migrated; 1 failed, the guest runs on the source; 2 usage; 3 the outcome is
// unknown (COMMIT sent, never answered): the guest stays paused on the source.
constexpr int kExitOutcomeUnknown = 3;
// 4: postcopy failed after its switch: neither end holds the whole guest (the destination's
// must be stopped).
constexpr int kExitGuestLost = 4;

int fail_lost(const char* role, const std::string& message, bool json) {
  if (json) emit_event("failed", {{"role", role}, {"outcome", "lost"}, {"error", message}});
  std::cerr << "pagewire " << role << ": " << message << "\n";
  return kExitGuestLost;
}

Result<sim::WritePattern> parse_pattern(const std::string& pattern) {
  if (pattern == "hot") return sim::WritePattern::kHotSet;
  if (pattern == "uniform") return sim::WritePattern::kUniform;
  if (pattern == "sequential") return sim::WritePattern::kSequential;
  return make_error(ErrorCode::kConfiguration, "pattern " + pattern + ": expected hot, uniform or sequential");
}

Result<migration::MigrationOptions::Postcopy> parse_postcopy(const std::string& mode, std::uint32_t rounds) {
  using Postcopy = migration::MigrationOptions::Postcopy;
  if (mode == "off") return Postcopy::kOff;
  if (mode == "now") return Postcopy::kNow;
  if (mode == "when-stuck") return Postcopy::kWhenStuck;
  if (mode == "after-rounds") {
    if (rounds == 0) return make_error(ErrorCode::kConfiguration, "--postcopy-rounds 0: expected 1 or more (or --postcopy now)");
    return Postcopy::kAfterRounds;
  }
  return make_error(ErrorCode::kConfiguration, "--postcopy " + mode + ": expected off, now, when-stuck or after-rounds");
}

nlohmann::json postcopy_json(const migration::MigrationReport& r) {
  if (!r.postcopy) return nullptr;
  return {{"missing_pages", r.postcopy_pages}, {"pages_requested", r.pages_requested},
          {"pages_ms", r.postcopy_pages_ms}};
}

nlohmann::json postcopy_json(const migration::PostcopyReceiveReport& r, std::uint64_t guest_writes) {
  if (!r.switched) return nullptr;
  return {{"missing_pages", r.missing_pages}, {"switch_ms", r.switch_ms}, {"pages_ms", r.pages_ms},
          {"remote_faults", r.remote_faults}, {"pages_requested", r.pages_requested},
          {"fault_us", {{"median", r.fault_median_us}, {"p99", r.fault_p99_us}, {"max", r.fault_max_us}}},
          {"guest_writes", guest_writes}};
}

std::string postcopy_text(const migration::MigrationReport& r) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << "postcopy: the guest ran on the destination after " << r.downtime_ms
      << " ms paused; " << r.postcopy_pages << " missing pages pushed in " << r.postcopy_pages_ms << " ms, "
      << r.pages_requested << " of them first, on request";
  return out.str();
}

std::string postcopy_text(const migration::PostcopyReceiveReport& r, std::uint64_t guest_writes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << "postcopy: guest started " << r.switch_ms << " ms after the request, "
      << r.missing_pages << " pages missing, the last in " << r.pages_ms << " ms; " << r.remote_faults
      << " remote faults (wait median " << r.fault_median_us << " us, p99 " << r.fault_p99_us << ", max "
      << r.fault_max_us << "); the guest wrote " << guest_writes << " times meanwhile";
  return out.str();
}

int fail(const char* role, const std::string& message, bool json) {
  if (json) {
    emit_event("failed", {{"role", role}, {"outcome", "failed"}, {"error", message}});
  }
  std::cerr << "pagewire " << role << ": " << message << "\n";
  return 1;
}

}  // namespace

int destination(const std::vector<std::string>& args) {
  LinkOptions o;
  std::string output;
  sim::GuestModelConfig guest_config;
  guest_config.pages_per_second = 0;
  std::string pattern = "uniform";
  po::options_description d("dst options");
  add_link_options(d, o, false);
  d.add_options()("output", po::value(&output), "write the migrated guest memory here, only once committed")
      ("guest-dirty-rate", po::value(&guest_config.pages_per_second)->default_value(guest_config.pages_per_second),
       "postcopy: when the source switches, run a guest model here writing this many pages per second (each first "
       "touch of a page still missing waits for the source); 0: accept the switch with no guest running")
      ("guest-pattern", po::value(&pattern)->default_value(pattern), "where that guest writes: hot, uniform, sequential");
  // After `--`: DPDK EAL options, passed through as they are (e.g. --log-level, --iova-mode).
  auto [own, eal_arguments] = split_at_dashes(args);
  o.eal_arguments = std::move(eal_arguments);
  if (auto done = parse_options(own, d, "pagewire dst --vdev DEV | --pci ADDR [options] [-- EAL options]")) {
    return *done;
  }
  auto parsed_pattern = parse_pattern(pattern);
  if (!parsed_pattern) return fail("dst", "--guest-" + parsed_pattern.error().message, o.json);
  guest_config.pattern = *parsed_pattern;
  auto endpoint = bring_up(o, "dst");
  if (!endpoint) return fail("dst", endpoint.error().message, o.json);
  // Ctrl-C or a TERM from here on ends the wait for a source (one that answered is told), or
  // the migration (the source told; the image discarded); after the commit, only the wait
  // for the source's CLOSE.
  InterruptWatch interrupts([&](const char* signal) { endpoint->link.cancel(std::string("interrupted (") + signal + ")"); });
  // Pre-fault before the handshake: a first touch costs ~15 us per 4 KiB page on VMs, which
  // would otherwise land inside every round's figures.
  const auto prefault_start = Clock::now();
  auto region = sim::MappedMemory::allocate((endpoint->guest_pages + endpoint->state_pages) * o.page_size);
  if (!region) return fail("dst", region.error().message, o.json);
  if (const std::string note = endpoint->link.bind_to_port_node(region->bytes()); !note.empty() && !o.json) {
    std::cerr << "dst: " << note << "\n";
  }
  const double prefault_ms = std::chrono::duration<double, std::milli>(Clock::now() - prefault_start).count();
  // The demo starts the source on this line.
  if (o.json) {
    emit_event("ready", {{"role", "dst"}, {"prefault_ms", prefault_ms}, {"ram_bytes", endpoint->guest_pages * o.page_size},
                         {"page_size", o.page_size}, {"security", security_name(endpoint->config().security)}});
  } else {
    std::cout << "dst: ready, " << o.size_mib << " MiB pre-faulted in " << std::fixed << std::setprecision(0)
              << prefault_ms << " ms, security: " << security_name(endpoint->config().security) << std::endl;
  }
  if (auto status = endpoint->link.await_up(o.timeout_s * 1000); !status) return fail("dst", status.error().message, o.json);
  auto accepted = migration::Destination::accept(endpoint->link, region->bytes(), endpoint->guest_pages, o.page_size);
  if (!accepted) return fail("dst", accepted.error().message, o.json);
  const transport::DestinationSession& session = *accepted->parts().session;
  if (!o.json) {
    if (!session.streams_note().empty()) std::cout << "dst: " << session.streams_note() << "\n";
    std::cout << "dst: " << stream_cores_text(session, endpoint->plan()) << std::endl;
  }
  // Postcopy: the guest runs here from the switch on (a guest model, with --guest-dirty-rate).
  migration::DirtyLog guest_log(endpoint->guest_pages);
  std::optional<sim::GuestModel> guest;
  auto start_guest = [&](const migration::StartingImage&) -> Status {
    if (guest_config.pages_per_second == 0) return Ok{};
    guest.emplace(region->data(), endpoint->guest_pages, o.page_size, &guest_log, guest_config);
    guest->start();
    return Ok{};
  };
  // Committing means: the image is on disk. Only then does the source hear it is ours.
  auto write_output = [&](const migration::CommittedImage& image) -> Status {
    if (guest) (void)guest->pause();  // the image on disk is the guest as it stood
    // dst accepts into one mapping: one RAM block.
    const migration::RamBlock& ram = image.ram.front();
    return output.empty() ? Status{Ok{}} : sim::write_image_file(output, {ram.host, ram.bytes}, o.page_size);
  };
  auto control_socket = open_control_socket(o.control_socket, {
      .status = [&] {
        const transport::SessionTotals t = accepted->parts().session->published_totals();
        return nlohmann::json{{"role", "dst"}, {"state", "receiving"}, {"frames_received", t.streams.frames_received},
                              {"payload_bytes_received", t.streams.payload_bytes_received}};
      },
      .set = {},
      .cancel = [&](const std::string& reason) { accepted->cancel(reason); }});
  if (!control_socket) return fail("dst", control_socket.error().message, o.json);
  // Progress while receiving: JSON events, or a line that redraws itself on a terminal.
  const bool on_terminal = !o.json && isatty(STDOUT_FILENO) != 0;
  std::optional<EventTicker> progress;
  if (o.json || on_terminal) {
    progress.emplace(o.interval_ms, [&, started = Clock::now()] {
      const transport::SessionTotals t = accepted->parts().session->published_totals();
      std::uint64_t pages = 0;  // a destination publishes the pages it applied where a source counts encoded ones
      for (std::uint64_t p : t.encoded.pages) pages += p;
      const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
      if (!o.json) {
        std::cout << "\r  received " << pages << " pages, " << t.streams.payload_bytes_received / (1 << 20) << " MiB in "
                  << std::fixed << std::setprecision(1) << seconds << " s\033[K" << std::flush;
        return;
      }
      emit_event("progress", {{"role", "dst"}, {"seconds", seconds}, {"pages_applied", pages},
                              {"frames_received", t.streams.frames_received},
                              {"payload_bytes_received", t.streams.payload_bytes_received}});
    });
  }
  auto received = accepted->run(write_output, o.timeout_s * 1000, start_guest);
  progress.reset();
  if (on_terminal) std::cout << "\r\033[K" << std::flush;
  control_socket->reset();  // the migration is over: nothing left to control
  if (!received) {
    if (received.error().code == ErrorCode::kGuestLost) {
      if (guest) (void)guest->pause();  // it lacks pages for good: stopped, as the error says
      return fail_lost("dst", received.error().message, o.json);
    }
    return fail("dst", received.error().message + "; the partial image is discarded", o.json);
  }
  const std::uint64_t guest_writes = guest ? guest->writes() : 0;
  if (o.json) {
    emit_event("received", {{"role", "dst"}, {"status", "committed"}, {"digest", received->digest},
                            {"ram_bytes", endpoint->guest_pages * o.page_size}, {"page_size", o.page_size},
                            {"rx_scatter", endpoint->port().rx_scatter()},
                            {"checksum_offload", {{"tx", endpoint->port().tx_checksum_offload()},
                                                  {"rx", endpoint->port().rx_checksum_offload()}}},
                            {"device_state_bytes", received->device_state.size()}, {"prefault_ms", prefault_ms},
                            {"commit_hook_ms", received->commit_hook_ms}, {"streams", session.streams()},
                            {"postcopy", postcopy_json(received->postcopy, guest_writes)},
                            {"stream_cores", stream_cores_json(session, endpoint->plan())},
                            {"frames", frames_json(session.totals().streams)},
                            {"integrity", integrity_json(session, endpoint->config())}});
  } else {
    std::cout << "dst: committed, image digest " << received->digest << " (ready " << std::setprecision(0)
              << received->digest_ms << " ms, commit " << received->commit_wait_ms << " ms later, taken in "
              << received->commit_hook_ms << " ms), device state "
              << received->device_state.size() << " bytes" << std::endl;
    if (received->postcopy.switched) std::cout << "dst: " << postcopy_text(received->postcopy, guest_writes) << std::endl;
  }
  return 0;
}

int source(const std::vector<std::string>& args) {
  const auto started = Clock::now();  // setup: options, EAL, port, image, handshake
  LinkOptions o;
  migration::MigrationOptions migration;
  sim::GuestModelConfig guest_config;
  std::string profile_name = "idle-vm", pattern = "hot";
  std::uint64_t seed = 1;
  std::string state_file, image_file, trace_file;
  bool no_auto_converge = false;
  bool no_duplicates = false;
  std::string policy_name = "adaptive";
  int deflate_level = 1;
  double link_gbps = 0, max_gbps = 0;
  std::uint64_t delta_cache_mib = 64;
  std::uint16_t burst = 32;
  std::uint32_t window = 0;
  std::string congestion_control = "auto";
  bool no_zero_copy = false;
  std::string postcopy = "off";
  po::options_description d("src options");
  add_link_options(d, o, true);
  d.add_options()
      ("profile", po::value(&profile_name)->default_value(profile_name), "reference image: idle-vm, database, random")
      ("image", po::value(&image_file), "migrate this file instead (any raw memory image; its size sets --size-mib; "
                                        "the file itself is never written)")
      ("seed", po::value(&seed)->default_value(seed), "image and guest-model seed")
      ("dirty-rate", po::value(&guest_config.pages_per_second)->default_value(guest_config.pages_per_second),
       "pages per second the guest writes")
      ("pattern", po::value(&pattern)->default_value(pattern), "where it writes: hot, uniform, sequential")
      ("dirty-trace", po::value(&trace_file),
       "replay this trace instead of --dirty-rate/--pattern: '<microseconds> <page> [<bytes>]' per line, looping")
      ("hot-fraction", po::value(&guest_config.hot_fraction)->default_value(guest_config.hot_fraction),
       "hot set, as a fraction of memory (pattern hot)")
      ("write-bytes", po::value(&guest_config.bytes_per_write)->default_value(guest_config.bytes_per_write),
       "bytes per write: a few (delta pays) up to a whole page")
      ("downtime-ms", po::value(&migration.downtime_limit_ms)->default_value(migration.downtime_limit_ms),
       "switch over once the rest fits in this")
      ("switchover-gbps", po::value(&migration.switchover_gbps)->default_value(migration.switchover_gbps),
       "the rate to expect of the final round when deciding to switch over (as QEMU's avail-switchover-bandwidth); "
       "0: the last round's measured rate")
      ("max-rounds", po::value(&migration.max_rounds)->default_value(migration.max_rounds), "pre-copy rounds at most")
      ("max-seconds", po::value(&migration.max_seconds)->default_value(migration.max_seconds), "abort after this")
      ("no-auto-converge", po::bool_switch(&no_auto_converge), "switch over anyway instead of throttling the guest")
      ("postcopy", po::value(&postcopy)->default_value(postcopy),
       "run the guest on the destination before all its pages are there, pulling what it touches: off; now; "
       "when-stuck (when pre-copy stops converging, instead of throttling); after-rounds (after --postcopy-rounds "
       "rounds, unless pre-copy converges first). The migration is lost if the path stays down past "
       "--resume-window-s after the switch")
      ("postcopy-rounds", po::value(&migration.postcopy_after_rounds)->default_value(migration.postcopy_after_rounds),
       "pre-copy rounds before postcopy's switch (--postcopy after-rounds)")
      ("no-duplicates", po::bool_switch(&no_duplicates),
       "send every page's bytes, even where the destination already holds a page equal to it (COPY records are "
       "on by default; a destination from before them needs this)")
      ("policy", po::value(&policy_name)->default_value(policy_name),
       "codec policy: raw (zero pages detected, the rest raw), delta (XBZRLE against the last sent copy), "
       "deflate (ISA-L), full (delta, else deflate), adaptive (full, deflating only while that makes the round "
       "finish sooner, judged from the measured link rate and per-page costs, or from --link-gbps)")
      ("deflate-level", po::value(&deflate_level)->default_value(deflate_level), "ISA-L level 0..3")
      ("link-gbps", po::value(&link_gbps)->default_value(0),
       "the link's rate, for --policy adaptive; 0: measured while the migration runs")
      ("delta-cache-mib", po::value(&delta_cache_mib)->default_value(delta_cache_mib),
       "delta cache, split between the streams: size it to the hot set")
      ("max-gbps", po::value(&max_gbps)->default_value(0),
       "cap on the wire rate of all streams together (QEMU's max-bandwidth); 0: none")
      ("congestion-control", po::value(&congestion_control)->default_value(congestion_control),
       kCongestionControlHelp)
      ("no-zero-copy", po::bool_switch(&no_zero_copy),
       "copy every page into frames, the switchover's too (default: the paused guest's RAW pages are sent from its "
       "memory by reference where the port can send segment chains)")
      ("burst", po::value(&burst)->default_value(burst), "frames per TX/RX burst, 1..64")
      ("window", po::value(&window)->default_value(window),
       "frames in flight per stream at most, a power of two; 0: the path decides (1024 on a LAN or memory link, "
       "else about twice its measured bandwidth x delay, within --window-memory-mib)")
      ("state-file", po::value(&state_file), "device state to send at switchover (default: 4 KiB generated)");
  // After `--`: DPDK EAL options, passed through as they are (e.g. --log-level, --iova-mode).
  auto [own, eal_arguments] = split_at_dashes(args);
  o.eal_arguments = std::move(eal_arguments);
  if (auto done = parse_options(own, d, "pagewire src --vdev DEV | --pci ADDR [options] [-- EAL options]")) {
    return *done;
  }
  auto profile = sim::parse_profile(profile_name);
  if (!profile) return fail("src", profile.error().message, o.json);
  auto parsed_pattern = parse_pattern(pattern);
  if (!parsed_pattern) return fail("src", "--" + parsed_pattern.error().message, o.json);
  guest_config.pattern = *parsed_pattern;
  migration.auto_converge = !no_auto_converge;
  auto postcopy_mode = parse_postcopy(postcopy, migration.postcopy_after_rounds);
  if (!postcopy_mode) return fail("src", postcopy_mode.error().message, o.json);
  migration.postcopy = *postcopy_mode;
  guest_config.seed = seed;
  auto policy = pagecodec::policy_named(policy_name);
  if (!policy) return fail("src", "--" + policy.error().message, o.json);
  if (link_gbps < 0 || (link_gbps > 0 && policy_name != "adaptive")) {
    return fail("src", "--link-gbps " + std::to_string(link_gbps) + ": expected 0 (measured) or a rate, and only "
                       "with --policy adaptive (got --policy " + policy_name + ")", o.json);
  }

  std::vector<std::byte> device_state(4096);
  if (!state_file.empty()) {
    std::ifstream in(state_file, std::ios::binary);
    if (!in) return fail("src", "--state-file " + state_file + ": cannot read it", o.json);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    device_state.resize(bytes.size());
    std::memcpy(device_state.data(), bytes.data(), bytes.size());
  } else {
    for (std::size_t i = 0; i < device_state.size(); ++i) device_state[i] = std::byte(i * 7 + seed);
  }

  if (!image_file.empty()) {
    // The image's size is the guest's: a whole number of MiB, as the destination's --size-mib.
    struct stat info {};
    if (::stat(image_file.c_str(), &info) != 0) {
      return fail("src", "--image " + image_file + ": cannot read it: " + std::strerror(errno), o.json);
    }
    if (info.st_size <= 0 || info.st_size % (1 << 20) != 0) {
      return fail("src", "--image " + image_file + ": expected a non-empty file of a whole number of MiB", o.json);
    }
    o.size_mib = static_cast<std::uint64_t>(info.st_size) >> 20;
  }
  auto endpoint = bring_up(o, "src");
  if (!endpoint) return fail("src", endpoint.error().message, o.json);
  // Ctrl-C or a TERM from here on gives up like any failure: in the handshake a destination
  // that answered is told, mid-migration it is told and the guest keeps running here. Once
  // the commit is sent, a signal changes nothing: the outcome is the destination's.
  InterruptWatch interrupts([&](const char* signal) { endpoint->link.cancel(std::string("interrupted (") + signal + ")"); });
  if (burst < 1 || burst > 64) return fail("src", "--burst " + std::to_string(burst) + ": expected 1..64", o.json);
  if ((window & (window - 1)) != 0 || window > (1u << 18)) {
    return fail("src", "--window " + std::to_string(window) + ": expected 0 (the path decides) or a power of two up to 262144",
                o.json);
  }
  if (max_gbps < 0) return fail("src", "--max-gbps: expected 0 (no cap) or a positive rate", o.json);
  if (migration.switchover_gbps < 0) {
    return fail("src", "--switchover-gbps: expected 0 (measured) or a positive rate", o.json);
  }
  auto control = parse_congestion_control(congestion_control);
  if (!control) return fail("src", control.error().message, o.json);
  transport::SessionConfig config = endpoint->config();
  config.page_size = o.page_size;
  config.delta_cache_bytes = delta_cache_mib << 20;
  config.tuning.burst = burst;
  config.tuning.window_frames = window;
  config.tuning.rate_bytes_per_second = max_gbps * 1e9 / 8 / o.streams;
  config.tuning.congestion_control = *control;
  config.tuning.zero_copy = !no_zero_copy;
  config.policy = *policy;
  config.policy.duplicates = !no_duplicates;
  config.policy.deflate_level = deflate_level;
  config.policy.adaptive.link_bytes_per_second = link_gbps * 1e9 / 8 / o.streams;
  if (auto status = config.policy.validate(); !status) return fail("src", status.error().message, o.json);

  auto region = image_file.empty()
                    ? sim::MappedMemory::allocate((endpoint->guest_pages + endpoint->state_pages) * o.page_size)
                    : sim::MappedMemory::map_file_private(image_file, endpoint->state_pages * o.page_size);
  if (!region) return fail("src", region.error().message, o.json);
  if (const std::string note = endpoint->link.bind_to_port_node(region->bytes()); !note.empty() && !o.json) {
    std::cerr << "src: " << note << "\n";
  }
  const std::span<std::byte> guest_bytes(region->data(), endpoint->guest_pages * o.page_size);
  if (image_file.empty()) {
    if (auto status = sim::fill_image(guest_bytes, o.page_size, *profile, seed); !status) {
      return fail("src", status.error().message, o.json);
    }
  } else {
    profile_name = image_file;
  }
  const std::string initial_digest = migration::to_hex(migration::digest_of(guest_bytes));
  if (auto status = endpoint->link.await_up(o.timeout_s * 1000); !status) return fail("src", status.error().message, o.json);
  auto memory = migration::MigrationMemory::contiguous(region->bytes(), endpoint->guest_pages, config.page_size);
  if (!memory) return fail("src", memory.error().message, o.json);
  auto connected = migration::connect_source(endpoint->link, std::move(memory).value(), config, migration);
  if (!connected) {
    return fail("src", connected.error().message + "; nothing was migrated: the guest keeps running on the source", o.json);
  }
  const transport::SourceSession& session = *connected->parts().session;
  const double setup_ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();

  sim::DirtyTrace trace;
  if (!trace_file.empty()) {
    auto loaded = sim::load_dirty_trace(trace_file, endpoint->guest_pages, o.page_size);
    if (!loaded) return fail("src", loaded.error().message, o.json);
    trace = std::move(loaded).value();
    guest_config.trace = &trace;
  }
  migration::DirtyLog log(endpoint->guest_pages);
  sim::GuestModel guest(region->data(), endpoint->guest_pages, o.page_size, &log, guest_config);
  guest.start();
  if (!o.json) {
    std::cout << "src: " << o.size_mib << " MiB " << profile_name << " image (digest " << initial_digest
              << "), path MTU " << session.path_mtu() << ", security: " << security_name(config.security)
              << ", UDP checksum " << session.udp_checksum_note() << ", congestion control " << (session.congestion_controlled() ? "on" : "off")
              << ", zero-copy switchover " << session.zero_copy_note() << ", guest writing " << guest_config.pages_per_second
              << " pages/s (" << pattern << ", " << guest_config.bytes_per_write << " B each)\n"
              << "src: " << stream_cores_text(session, endpoint->plan()) << "\n";
    if (!session.streams_note().empty()) std::cout << "src: " << session.streams_note() << "\n";
    std::cout << "round     pages   wire MiB   seconds  Gbit/s  dirty pages/s  left   throttle  zero/raw/delta/deflate/copy"
              << std::endl;
  }
  ProgressLine progress(o.page_size);
  auto draw_progress = [&](const migration::RoundProgress& p) { progress.draw(p); };
  auto last_progress = Clock::now() - std::chrono::hours(1);
  auto emit_progress = [&](const migration::RoundProgress& p) {
    if (Clock::now() - last_progress < std::chrono::milliseconds(o.interval_ms)) return;
    last_progress = Clock::now();
    emit_event("progress", {{"role", "src"}, {"round", p.round}, {"pages", p.pages}, {"pages_done", p.pages_done},
                            {"bytes_remaining", (p.pages - std::min(p.pages_done, p.pages)) * o.page_size},
                            {"seconds", p.seconds}});
  };
  std::atomic<std::uint32_t> current_round{0};
  auto control_socket = open_control_socket(o.control_socket, {
      .status = [&] {
        const transport::SessionTotals t = session.published_totals();
        return nlohmann::json{{"role", "src"}, {"state", "migrating"}, {"round", current_round.load()},
                              {"seconds", std::chrono::duration<double>(Clock::now() - started).count()},
                              {"wire_bytes", t.encoded.output_bytes}, {"frames_sent", t.streams.frames_sent},
                              {"payload_bytes_sent", t.streams.payload_bytes_sent},
                              {"max_gbps", connected->max_gbps()}, {"downtime_limit_ms", connected->downtime_limit_ms()}};
      },
      .set = [&](const nlohmann::json& request) { return apply_settings(request, *connected); },
      .cancel = [&](const std::string& reason) { connected->cancel(reason); }});
  if (!control_socket) {
    connected->parts().session->abort(control_socket.error().message);  // the destination need not wait it out
    return fail("src", control_socket.error().message + "; nothing was migrated: the guest keeps running on the source", o.json);
  }
  auto report = connected->run(guest, log, device_state, [&](const migration::RoundReport& r) {
    current_round = r.round + 1;
    if (o.json) {
      emit_event("round", {{"role", "src"}, {"round", r.round}, {"pages", r.pages}, {"wire_bytes", r.wire_bytes},
                           {"seconds", r.seconds}, {"gbps", r.guest_gbps},
                           {"dirty_pages_per_second", r.dirty_pages_per_second}, {"dirty_pages", r.dirty_pages},
                           {"throttle", r.throttle}, {"pages_by_encoding", by_encoding(r.pages_by_encoding)}});
      return;
    }
    progress.clear();
    std::cout << std::setw(5) << r.round << std::setw(10) << r.pages << std::fixed << std::setprecision(1)
              << std::setw(11) << static_cast<double>(r.wire_bytes) / (1 << 20) << std::setprecision(3) << std::setw(10)
              << r.seconds << std::setprecision(2) << std::setw(8) << r.guest_gbps << std::setprecision(0)
              << std::setw(15) << r.dirty_pages_per_second << std::setw(6) << r.dirty_pages << std::setw(10)
              << r.throttle * 100 << "%  " << encoding_mix(r.pages_by_encoding) << std::endl;
  }, o.json ? std::function<void(const migration::RoundProgress&)>(emit_progress) : draw_progress);
  progress.clear();
  control_socket->reset();  // the migration is over: nothing left to control
  // A failure's ABORT is on its way to the destination: as after a success (below), give it
  // time to be read before the port closes, or memif's PMD unmaps its rings under a peer
  // still reading them and the destination waits out its resume window instead.
  if (!report) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  if (!report && report.error().code == ErrorCode::kCommitUnknown) {
    // The destination remembers for a while (it lingers): asking it later settles it.
    const std::string ask = "; ask the destination with 'pagewire outcome --session " +
                            std::to_string(connected->session_id()) + "' and this command's link options";
    if (o.json) {
      emit_event("failed", {{"role", "src"}, {"outcome", "unknown"}, {"session", connected->session_id()},
                            {"error", report.error().message + ask}});
    }
    std::cerr << "pagewire src: outcome unknown: " << report.error().message << ask << "\n";
    return kExitOutcomeUnknown;
  }
  if (!report && report.error().code == ErrorCode::kGuestLost) return fail_lost("src", report.error().message, o.json);
  if (!report) return fail("src", report.error().message, o.json);
  // The side that started closes last: the destination answers repeats for a moment after
  // the commit, and memif's PMD unmaps its rings under a peer still polling them.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double guest_mib = static_cast<double>(report->pages_sent) * o.page_size / (1 << 20);
  if (o.json) {
    emit_event("migrated", {{"role", "src"}, {"status", "migrated"}, {"verified", report->verified}, {"digest", report->digest},
                                {"ram_bytes", endpoint->guest_pages * o.page_size}, {"page_size", o.page_size},
                                {"path_mtu", session.path_mtu()}, {"setup_ms", setup_ms},
                                {"total_seconds", report->total_seconds}, {"downtime_ms", report->downtime_ms},
                                {"expected_downtime_ms", report->expected_downtime_ms},
                                {"downtime_phases_ms", {{"pause", report->pause_ms}, {"final_round", report->final_round_ms}, {"finish", report->finish_ms},
                                                        {"verify", report->verify_ms}, {"commit", report->commit_ms}}},
                                {"rounds", report->rounds}, {"pages_sent", report->pages_sent},
                                {"wire_bytes", report->wire_bytes}, {"compression_ratio", guest_mib * (1 << 20) / std::max<double>(1, report->wire_bytes)},
                                {"throughput_gbps", guest_mib * 8 * (1 << 20) / 1e9 / report->total_seconds},
                                {"pages_by_encoding", by_encoding(report->pages_by_encoding)}, {"final_throttle", report->final_throttle},
                                {"outages_ridden", report->outages_ridden}, {"longest_silence_ms", report->longest_silence_ms},
                                {"postcopy", postcopy_json(*report)}, {"guest_writes", guest.writes()},
                                {"security", security_name(config.security)},
                                {"zero_copy", session.zero_copy_note()},
                                {"streams", session.streams()},
                                {"stream_cores", stream_cores_json(session, endpoint->plan())},
                                {"integrity", with_record_crc(integrity_json(session, config), config.policy.crc)},
                                {"pages_by_reference", session.totals().streams.pages_by_reference},
                                {"delta_cache", delta_cache_json(session.totals().delta_cache)},
                                {"duplicates", duplicates_json(session.totals().duplicates)},
                                {"frames", frames_json(session.totals().streams)},
                                {"rx_scatter", endpoint->port().rx_scatter()},
                                {"window", window_json(session, window)},
                                {"warnings", window_warnings(session, window)},
                                {"checksum_offload", {{"tx", endpoint->port().tx_checksum_offload()},
                                                      {"rx", endpoint->port().rx_checksum_offload()}}}});
  } else {
    for (const std::string& warning : window_warnings(session, window)) std::cerr << "src: warning: " << warning << "\n";
    std::cout << std::fixed << std::setprecision(2) << "src: migrated and verified (digest " << report->digest
 << "): " << report->total_seconds << " s total, downtime " << std::setprecision(1) << report->downtime_ms
 << " ms (expected " << report->expected_downtime_ms << "; pause " << report->pause_ms << ", final round " << report->final_round_ms
              << ", FIN " << report->finish_ms << ", verify " << report->verify_ms << ", commit " << report->commit_ms
              << "), " << report->rounds << " rounds, " << std::setprecision(0) << guest_mib << " MiB of pages as "
              << static_cast<double>(report->wire_bytes) / (1 << 20) << " MiB on the wire ("
              << std::setprecision(2) << guest_mib * (1 << 20) / std::max<double>(1, report->wire_bytes)
              << "x), zero/raw/delta/deflate/copy pages " << encoding_mix(report->pages_by_encoding) << std::endl;
    if (report->postcopy) std::cout << "src: " << postcopy_text(*report) << std::endl;
    if (report->outages_ridden > 0) {
      std::cout << "src: rode out " << report->outages_ridden << " outage(s) of the path, the longest "
                << std::setprecision(1) << report->longest_silence_ms / 1000 << " s" << std::endl;
    }
  }
  return 0;
}

namespace {

// Both ends of the demo share one host: each end's stream cores start where the other
// end's control thread sits (it mostly sleeps), so that on a small machine the two ends'
// busy cores spread over the CPUs instead of piling up on the same ones.
// The two ends share the host's CPUs with each other and with their hashing threads: a
// stream core with nothing to do lets the others run.
constexpr const char* kDemoIdleSleepUs = "20";

struct DemoPlacement {
  std::string source_control, source_streams, destination_control, destination_streams;
};

DemoPlacement place_demo(std::uint16_t streams) {
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  auto list = [&](unsigned first) {
    std::string text;
    for (unsigned s = 0; s < streams; ++s) {
      if (s > 0) text += ',';
      text += std::to_string((first + s) % cpus);
    }
    return text;
  };
  const unsigned other = cpus > 1 ? 1 : 0;
  return {"0", list(other), std::to_string(other), list(0)};
}

}  // namespace

int demo(const std::vector<std::string>& args, const char* self) {
  // Options after `--` go to the source as they are (e.g. `-- --policy deflate --profile database`).
  const auto [own, forwarded] = split_at_dashes(args);
  std::uint64_t size_mib = 1024;
  std::uint16_t streams = 1;
  std::uint32_t page_size = 4096;
  double dirty_rate = 20000;
  bool json = false;
  bool encrypt = false;
  std::string psk_file;
  po::options_description d("demo options");
  d.add_options()
      ("help,h", "show this help")
      ("size-mib", po::value(&size_mib)->default_value(size_mib), "guest memory")
      ("streams", po::value(&streams)->default_value(streams), "streams (queue pairs) on both ends")
      ("page-size", po::value(&page_size)->default_value(page_size), "guest page size on both ends")
      ("dirty-rate", po::value(&dirty_rate)->default_value(dirty_rate),
       "pages per second the guest writes (on the destination too, once it runs there: -- --postcopy ...)")
      ("json", po::bool_switch(&json), "one JSON object per event, from both ends")
      ("psk-file", po::value(&psk_file), "authenticate both ends with this pre-shared key")
      ("encrypt", po::bool_switch(&encrypt),
       "encrypt the stream (AES-256-GCM); without --psk-file, with a key made for this run");
  if (auto done = parse_options(own, d,
                                "pagewire demo [options] [-- src options]\n"
                                "Migrates a reference image (idle-vm unless the source is told otherwise), with the "
                                "guest writing, to a second process over memif.")) {
    return *done;
  }
  const std::string socket = "/tmp/pagewire-demo-" + std::to_string(getpid()) + ".sock";
  const DemoPlacement placement = place_demo(streams);
  const std::string size = std::to_string(size_mib);
  const std::string stream_count = std::to_string(streams);
  const std::string page_bytes = std::to_string(page_size);
  // A key for this run only, in an owner-only file both processes read and that goes with it.
  struct RemovedAtExit {
    std::string path;
    ~RemovedAtExit() {
      if (!path.empty()) unlink(path.c_str());
    }
  } own_key_file;
  if (encrypt && psk_file.empty()) {
    const std::string path = "/tmp/pagewire-demo-" + std::to_string(getpid()) + ".key";
    if (auto written = transport::PreSharedKey::generate().write_file(path); !written) {
      return fail("demo", written.error().message, json);
    }
    own_key_file.path = psk_file = path;
  }
  std::vector<std::string> security_args;
  if (!psk_file.empty()) security_args = {"--psk-file", psk_file};
  if (encrypt) security_args.push_back("--encrypt");
  int ready[2];
  if (pipe(ready) != 0) return fail("demo", "cannot create a pipe", json);
  if (!json) {
    std::cout << "pagewire demo: " << size_mib << " MiB image, source here, destination in process "
              << "(memif " << socket << ")" << std::endl;
  }
  const pid_t child = fork();
  if (child == 0) {
    dup2(ready[1], STDOUT_FILENO);
    close(ready[0]);
    const std::string vdev = "net_memif0,role=server,socket=" + socket;
    std::ostringstream guest_rate;  // the same guest, should it move there before its pages (postcopy)
    guest_rate << dirty_rate;
    std::vector<std::string> words = {self, "dst", "--vdev", vdev, "--size-mib", size, "--streams", stream_count,
                                      "--page-size", page_bytes, "--cpu", placement.destination_control,
                                      "--cores", placement.destination_streams, "--idle-sleep-us", kDemoIdleSleepUs,
                                      "--guest-dirty-rate", guest_rate.str()};
    if (json) words.push_back("--json");
    words.insert(words.end(), security_args.begin(), security_args.end());
    std::vector<char*> argv;
    for (auto& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(ready[1]);
  // Start the source only once the destination's port is up (memif's client is refused
  // before that); then relay the destination's words.
  const std::string indent = json ? "" : "  ";
  FILE* from_child = fdopen(ready[0], "r");
  char line[512];
  bool destination_ready = false;
  while (!destination_ready && std::fgets(line, sizeof line, from_child) != nullptr) {
    std::cout << indent << line << std::flush;
    destination_ready = std::string(line).find("ready") != std::string::npos;
  }
  if (!destination_ready) {
    waitpid(child, nullptr, 0);
    return fail("demo", "the destination process did not start", json);
  }
  std::ostringstream rate;
  rate << dirty_rate;
  std::vector<std::string> source_args = {"--vdev", "net_memif0,role=client,socket=" + socket,
                                          "--size-mib", size,
                                          "--streams", stream_count,
                                          "--page-size", page_bytes,
                                          "--dirty-rate", rate.str(),
                                          "--cpu", placement.source_control,
                                          "--cores", placement.source_streams,
                                          "--idle-sleep-us", kDemoIdleSleepUs,
                                          "--file-prefix", "pagewire-demo-src-" + std::to_string(getpid())};
  if (json) source_args.push_back("--json");
  source_args.insert(source_args.end(), security_args.begin(), security_args.end());
  source_args.insert(source_args.end(), forwarded.begin(), forwarded.end());
  const int source_status = source(source_args);
  // A source that failed before its ABORT could reach the destination (a bad option, no
  // link) would leave it waiting for its whole timeout.
  if (source_status != 0) kill(child, SIGTERM);
  while (std::fgets(line, sizeof line, from_child) != nullptr) std::cout << indent << line << std::flush;
  int status = 0;
  waitpid(child, &status, 0);
  unlink(socket.c_str());
  const bool verified = source_status == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (json) {
    emit_event("demo", {{"role", "demo"}, {"verified", verified}});
  } else {
    std::cout << (verified ? "pagewire demo: migration verified byte for byte\n" : "pagewire demo: FAILED\n");
  }
  return verified ? 0 : 1;
}

}  // namespace pagewire::cli
