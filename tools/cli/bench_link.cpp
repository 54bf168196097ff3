// pagewire bench link: a link benchmark between two hosts, or two processes, as iperf3 is
// for TCP: `--server` receives, `--client` sends RAW pages of a --size-mib region round after
// round for --duration-s, over any port (--pci, --vdev), one stream per pinned core. Both
// ends report every --interval-s and at the end: UDP payload and wire Gbit/s, Mpps,
// retransmits and the smoothed RTT, per stream and in total, as text or JSON events.
#include <boost/program_options.hpp>
#include <rte_cycles.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

#include "cli/commands.hpp"
#include "cli/endpoint.hpp"
#include "cli/json_events.hpp"
#include "pagewire/bench/tcp_link.hpp"
#include "pagewire/pagecodec/policy.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/transport/frame.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

namespace {

using Clock = std::chrono::steady_clock;

// Ethernet, IPv4 and UDP headers of every frame: what "wire" adds to the UDP payload
// (preamble, FCS and the inter-frame gap are the NIC's and not counted).
constexpr double kFrameHeaderBytes = 14 + 20 + 8;

int fail_with(const char* role, const std::string& message, bool json) {
  if (json) emit_event("failed", {{"role", role}, {"outcome", "failed"}, {"error", message}});
  std::cerr << "pagewire bench link " << role << ": " << message << "\n";
  return 1;
}

struct StreamSample {
  std::uint64_t frames = 0, payload_bytes = 0, retransmits = 0, srtt_us = 0;
};

// One end's view of its streams, read from the counters they publish (any thread).
using ReadStreams = std::function<std::vector<StreamSample>()>;

nlohmann::json rates_json(const StreamSample& from, const StreamSample& to, double seconds) {
  const double bytes = static_cast<double>(to.payload_bytes - from.payload_bytes);
  const double frames = static_cast<double>(to.frames - from.frames);
  return {{"bytes", to.payload_bytes - from.payload_bytes},
          {"gbps", bytes * 8 / seconds / 1e9},
          {"wire_gbps", (bytes + frames * kFrameHeaderBytes) * 8 / seconds / 1e9},
          {"mpps", frames / seconds / 1e6},
          {"retransmits", to.retransmits - from.retransmits},
          {"srtt_us", to.srtt_us}};
}

StreamSample total_of(const std::vector<StreamSample>& streams) {
  StreamSample total;
  for (const StreamSample& s : streams) {
    total.frames += s.frames;
    total.payload_bytes += s.payload_bytes;
    total.retransmits += s.retransmits;
    total.srtt_us = std::max(total.srtt_us, s.srtt_us);
  }
  return total;
}

// Prints an "interval" report whenever --interval-s has passed, and the "summary" at the
// end, from the streams' published counters.
class Reporter {
 public:
  Reporter(const char* role, bool json, double interval_s, ReadStreams read)
      : role_(role), json_(json), interval_s_(interval_s), read_(std::move(read)), start_(Clock::now()),
        last_time_(start_), first_(read_()), last_(first_) {}

  void at(Clock::time_point now) {
    if (std::chrono::duration<double>(now - last_time_).count() < interval_s_) return;
    const std::vector<StreamSample> sample = read_();
    report("interval", last_, sample, last_time_, now);
    last_ = sample;
    last_time_ = now;
  }
  // Returns the run's UDP payload Gbit/s.
  double summary() { return report("summary", first_, read_(), start_, Clock::now()); }

 private:
  double report(const char* event, const std::vector<StreamSample>& from, const std::vector<StreamSample>& to,
                Clock::time_point begin, Clock::time_point end) const {
    const double seconds = std::max(std::chrono::duration<double>(end - begin).count(), 1e-9);
    nlohmann::json streams = nlohmann::json::array();
    for (std::size_t s = 0; s < to.size(); ++s) {
      nlohmann::json one = rates_json(from[s], to[s], seconds);
      one["stream"] = s;
      streams.push_back(one);
    }
    nlohmann::json fields = rates_json(total_of(from), total_of(to), seconds);
    const double offset = std::chrono::duration<double>(begin - start_).count();
    if (json_) {
      fields.update({{"role", role_}, {"start_s", offset}, {"end_s", offset + seconds}, {"streams", streams}});
      emit_event(event, fields);
      return fields["gbps"].get<double>();
    }
    std::cout << role_ << " " << std::fixed << std::setprecision(2) << std::setw(6) << offset << "-" << std::setw(6)
              << offset + seconds << " s  " << std::setw(8) << fields["gbps"].get<double>() << " Gbit/s  "
              << std::setw(8) << fields["wire_gbps"].get<double>() << " wire  " << std::setprecision(3) << std::setw(7)
              << fields["mpps"].get<double>() << " Mpps";
    if (std::string(role_) == "client") {  // only the sender knows what it resent and the RTT
      std::cout << "  " << std::setw(6) << fields["retransmits"].get<std::uint64_t>() << " resent, srtt "
                << fields["srtt_us"].get<std::uint64_t>() << " us";
    }
    std::cout << (std::string(event) == "summary" ? "  (whole run)" : "") << std::endl;
    return fields["gbps"].get<double>();
  }

  const char* role_;
  bool json_;
  double interval_s_;
  ReadStreams read_;
  Clock::time_point start_, last_time_;
  std::vector<StreamSample> first_, last_;
};

// A RAW page stream: nothing the codec could shrink, every page sent in full each round.
void configure_raw(transport::SessionConfig& config, std::uint64_t pages, std::uint32_t page_size) {
  config.page_size = page_size;
  config.region_pages = pages;
  config.policy = *pagecodec::policy_named("raw");
  config.policy.zero = config.policy.delta = config.policy.deflate = config.policy.duplicates = false;
  config.policy.crc = false;
}

Result<sim::MappedMemory> random_region(std::uint64_t bytes) {
  auto region = sim::MappedMemory::allocate(bytes);  // pre-faulted
  if (!region) return region.error();
  std::mt19937_64 random(42);
  for (std::uint64_t at = 0; at + 8 <= bytes; at += 8) {
    const std::uint64_t v = random();
    std::memcpy(region->data() + at, &v, 8);
  }
  return region;
}

template <typename Session>
ReadStreams stream_reader(const Session& session, bool sending) {
  return [&session, sending] {
    std::vector<StreamSample> samples;
    for (std::uint16_t s = 0; s < session.streams(); ++s) {
      const transport::StreamCounters c = session.published(s).read().stream;
      samples.push_back(sending ? StreamSample{c.frames_sent, c.payload_bytes_sent,
                                               c.retransmits_sack + c.retransmits_timeout, c.srtt_us}
                                : StreamSample{c.frames_received, c.payload_bytes_received, 0, 0});
    }
    return samples;
  };
}

// Kernel TCP beside the run: what the same hosts carry without pagewire.
void report_tcp(const char* role, const bench::TcpLinkResult& tcp, double pagewire_gbps, bool json) {
  const double ratio = tcp.gbps() > 0 ? pagewire_gbps / tcp.gbps() : 0;
  if (json) {
    emit_event("tcp_summary", {{"role", role}, {"bytes", tcp.bytes}, {"seconds", tcp.seconds}, {"gbps", tcp.gbps()},
                               {"pagewire_gbps", pagewire_gbps}, {"pagewire_vs_tcp", ratio}});
    return;
  }
  std::cout << role << " kernel TCP: " << std::fixed << std::setprecision(2) << tcp.gbps() << " Gbit/s over "
            << tcp.seconds << " s; pagewire " << pagewire_gbps << " Gbit/s = " << ratio << "x kernel TCP" << std::endl;
}

int run_client(Endpoint& endpoint, const LinkOptions& o, double duration_s, double interval_s,
               const std::string& tcp_address) {
  const std::uint64_t pages = (o.size_mib << 20) / o.page_size;
  auto region = random_region(pages * o.page_size);
  if (!region) return fail_with("client", region.error().message, o.json);
  transport::SessionConfig config = endpoint.config();
  configure_raw(config, pages, o.page_size);
  const auto memory = pagecodec::PageMap::contiguous(region->data(), pages, o.page_size);
  auto session = transport::SourceSession::connect(config, endpoint.port(), memory);
  if (!session) return fail_with("client", session.error().message, o.json);
  transport::SourceSession& source = **session;
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);
  Reporter reporter("client", o.json, interval_s, stream_reader(source, true));
  const auto end = Clock::now() + std::chrono::duration<double>(duration_s);
  for (std::uint32_t generation = 1; Clock::now() < end; ++generation) {
    source.begin_round(all, generation);
    if (Status sent = source.run_until_idle(o.timeout_s * 1000, [&] { reporter.at(Clock::now()); }); !sent) {
      return fail_with("client", sent.error().message, o.json);
    }
    reporter.at(Clock::now());
  }
  const double gbps = reporter.summary();
  source.begin_finish();
  if (Status finished = source.run_until_idle(o.timeout_s * 1000); !finished) {
    return fail_with("client", finished.error().message, o.json);
  }
  if (tcp_address.empty()) return 0;
  auto tcp = bench::tcp_link_send(tcp_address, duration_s, o.timeout_s * 1000);
  if (!tcp) return fail_with("client", tcp.error().message, o.json);
  report_tcp("client", *tcp, gbps, o.json);
  return 0;
}

int run_server(Endpoint& endpoint, const LinkOptions& o, double interval_s, std::uint16_t tcp_port) {
  std::optional<bench::TcpLinkServer> tcp;
  if (tcp_port != 0) {
    auto listening = bench::TcpLinkServer::open(tcp_port);
    if (!listening) return fail_with("server", listening.error().message, o.json);
    tcp.emplace(std::move(listening).value());
  }
  const std::uint64_t pages = (o.size_mib << 20) / o.page_size;
  auto region = sim::MappedMemory::allocate(pages * o.page_size);
  if (!region) return fail_with("server", region.error().message, o.json);
  transport::SessionConfig config = endpoint.config();
  configure_raw(config, pages, o.page_size);
  const auto memory = pagecodec::PageMap::contiguous(region->data(), pages, o.page_size);
  if (!o.json) std::cout << "server: waiting for a client" << std::endl;
  auto session = transport::DestinationSession::accept(config, endpoint.port(), memory);
  if (!session) return fail_with("server", session.error().message, o.json);
  transport::DestinationSession& destination = **session;
  Reporter reporter("server", o.json, interval_s, stream_reader(destination, false));
  std::atomic<bool> done{false};
  std::thread reports([&] {
    while (!done.load()) {
      reporter.at(Clock::now());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const Status received = destination.run_until_finished();
  done = true;
  reports.join();
  if (!received) return fail_with("server", received.error().message, o.json);
  const double gbps = reporter.summary();
  destination.linger();
  if (!tcp) return 0;
  auto tcp_received = tcp->receive(o.timeout_s * 1000);
  if (!tcp_received) return fail_with("server", tcp_received.error().message, o.json);
  report_tcp("server", *tcp_received, gbps, o.json);
  return 0;
}

}  // namespace

int bench_link(const std::vector<std::string>& args) {
  LinkOptions o;
  o.size_mib = 256;
  bool server = false, client = false;
  double duration_s = 10, interval_s = 1;
  std::uint16_t tcp_port = 0;
  std::string tcp_address;
  po::options_description d("bench link options");
  // The server takes the destination's default addresses, the client the source's.
  const bool serving = std::find(args.begin(), args.end(), "--server") != args.end() ||
                       std::find(args.begin(), args.end(), "-s") != args.end();
  add_link_options(d, o, !serving);
  d.add_options()
      ("server,s", po::bool_switch(&server), "receive (start it first), like iperf3 -s")
      ("client,c", po::bool_switch(&client), "send to the server, like iperf3 -c")
      ("duration-s,t", po::value(&duration_s)->default_value(duration_s), "client: send for this long")
      ("interval-s,i", po::value(&interval_s)->default_value(interval_s), "a report every this many seconds")
      ("tcp-port", po::value(&tcp_port)->default_value(tcp_port),
       "server: also take a kernel-TCP client on this port after the run (0: none)")
      ("tcp", po::value(&tcp_address),
       "client: then send over kernel TCP to this IPV4:PORT for as long (the server's --tcp-port, on an address "
       "the hosts' kernels reach each other by), and compare");
  auto [own, eal_arguments] = split_at_dashes(args);
  o.eal_arguments = std::move(eal_arguments);
  if (auto done = parse_options(own, d, "pagewire bench link --server | --client --vdev DEV | --pci ADDR [options]")) {
    return *done;
  }
  if (server == client) {
    std::cerr << "pagewire bench link: --server or --client: expected exactly one\n";
    return 2;
  }
  if (!(duration_s > 0) || !(interval_s > 0)) {
    std::cerr << "pagewire bench link: --duration-s and --interval-s: expected more than 0 seconds\n";
    return 2;
  }
  const char* role = server ? "server" : "client";
  auto endpoint = bring_up(o, role);
  if (!endpoint) return fail_with(role, endpoint.error().message, o.json);
  if (Status up = endpoint->link.await_up(o.timeout_s * 1000); !up) return fail_with(role, up.error().message, o.json);
  return server ? run_server(*endpoint, o, interval_s, tcp_port)
                : run_client(*endpoint, o, duration_s, interval_s, tcp_address);
}

}  // namespace pagewire::cli
