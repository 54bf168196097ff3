// pagewire bench cost: per-stage cost per page and the cores a link rate needs.
#include <boost/program_options.hpp>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_events.hpp"
#include "pagewire/bench/cost_model.hpp"
#include "pagewire/bench/transport_bench.hpp"
#include "pagewire/transport/wire.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int bench_cost(const std::vector<std::string>& args) {
  bench::CostModelOptions options;
  std::uint64_t sample_mib = options.sample_bytes >> 20;
  std::vector<std::string> profiles;
  bool json = false;
  po::options_description d("bench cost options");
  d.add_options()
      ("help,h", "show this help")
      ("sample-mib", po::value(&sample_mib)->default_value(sample_mib), "reference image per profile, MiB")
      ("repeats", po::value(&options.repeats)->default_value(options.repeats), "timed passes; medians are reported")
      ("profile", po::value(&profiles)->composing(), "idle-vm, database, random (repeatable; default: all)")
      ("policy", po::value(&options.policies)->composing(), "raw, delta, deflate, full (repeatable; default: all)")
      ("json", po::bool_switch(&json), "one JSON object per stage cost (event \"cost\")");
  if (auto done = parse_options(args, d, "pagewire bench cost [options]")) return *done;
  if (sample_mib == 0 || options.repeats < 1) {
    std::cerr << "pagewire bench cost: --sample-mib and --repeats: expected at least 1\n";
    return 2;
  }
  options.sample_bytes = sample_mib << 20;
  if (!profiles.empty()) {
    options.profiles.clear();
    for (const auto& name : profiles) {
      auto profile = sim::parse_profile(name);
      if (!profile) {
        std::cerr << "pagewire bench cost: --profile " << profile.error().message << "\n";
        return 2;
      }
      options.profiles.push_back(*profile);
    }
  }
  std::ostream& text = text_output(json);
  auto numa_node = init_pair_eal("bench cost", text);
  if (!numa_node) {
    std::cerr << "pagewire bench cost: " << numa_node.error().message << "\n";
    return 1;
  }
  // The transport's share: a RAW round between the two cores, no UDP checksum (a NIC
  // offloads it), less the copy per side it includes.
  text << "transport: RAW rounds over a net_ring pair" << std::endl;
  bench::TransportBenchOptions raw_round;
  raw_round.region_bytes = std::max<std::uint64_t>(options.sample_bytes, 8 << 20);
  raw_round.repeats = 3;
  raw_round.udp_checksum = false;
  raw_round.numa_node = *numa_node;
  auto transport = bench::run_transport_bench(raw_round,
                                              text);
  if (!transport) {
    std::cerr << "pagewire bench cost: " << transport.error().message << "\n";
    return 1;
  }
  const double pair_ns_per_byte = 8 / transport->gbps;
  const double copy_ns_per_byte = 8 / transport->memcpy_gbps;
  options.transport_ns_per_byte = std::max(pair_ns_per_byte - copy_ns_per_byte, 0.1 * pair_ns_per_byte);
  text << "codec stages on " << sample_mib << " MiB per profile" << std::endl;
  auto costs = bench::measure_stage_costs(options, text);
  if (!costs) {
    std::cerr << "pagewire bench cost: " << costs.error().message << "\n";
    return 1;
  }
  const std::size_t sealed_payload = transport::payload_for_mtu(9000, true);
  text << "sealing: AES-256-GCM on " << sealed_payload << "-byte frame payloads" << std::endl;
  const auto seal_costs = bench::measure_seal_costs(sealed_payload, options.repeats);
  if (json) {
    for (const auto& c : seal_costs) {
      emit_event("seal", {{"mode", c.mode}, {"payload_bytes", sealed_payload},
                                  {"seal_ns_per_byte", c.seal_ns_per_byte}, {"open_ns_per_byte", c.open_ns_per_byte},
                                  {"memcpy_ns_per_byte", c.memcpy_ns_per_byte},
                                  {"seal_cores", {c.seal_cores(25), c.seal_cores(40), c.seal_cores(100)}},
                                  {"open_cores", {c.open_cores(25), c.open_cores(40), c.open_cores(100)}},
                                  {"wire_gbps", {25, 40, 100}}});
    }
    for (const auto& c : *costs) {
      const auto at_25 = bench::cores_for(c, options.transport_ns_per_byte, 25, options.page_size);
      const auto at_40 = bench::cores_for(c, options.transport_ns_per_byte, 40, options.page_size);
      const auto at_100 = bench::cores_for(c, options.transport_ns_per_byte, 100, options.page_size);
      emit_event("cost", {{"profile", c.profile}, {"policy", c.policy}, {"round", c.round},
                                  {"encode_ns_per_page", c.encode_ns_per_page},
                                  {"decode_ns_per_page", c.decode_ns_per_page},
                                  {"wire_bytes_per_page", c.wire_bytes_per_page},
                                  {"transport_ns_per_byte", options.transport_ns_per_byte},
                                  {"source_cores", {at_25.source, at_40.source, at_100.source}},
                                  {"destination_cores", {at_25.destination, at_40.destination, at_100.destination}},
                                  {"memory_gbps", {25, 40, 100}},
                                  {"wire_gbps", {at_25.wire_gbps, at_40.wire_gbps, at_100.wire_gbps}}});
    }
    return 0;
  }
  bench::print_cost_table(*costs, options, text);
  text << "\n";
  bench::print_seal_costs(seal_costs, sealed_payload, text);
  return 0;
}

}  // namespace pagewire::cli
