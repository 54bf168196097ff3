// Placement plans on saved topologies: a 2-socket SMT server with the NIC on socket 1, a
// single SMT socket, a 2-core VM like the one CI runs on. Then the live machine: pin a thread
// and bind memory for real.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <set>
#include <string>

#include "pagewire/pinning/bind.hpp"
#include "pagewire/pinning/plan.hpp"
#include "saved_topology.hpp"

namespace pagewire::pinning {
namespace {

Topology load(const std::string& name) { return test::load_saved_topology(name); }

Plan must_plan(const Topology& topology, std::uint16_t streams, const std::string& port, unsigned helpers = 1) {
  auto result = plan(topology, {.streams = streams, .port = port, .helper_threads = helpers});
  EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
  return std::move(result).value();
}

bool any_warning_contains(const Plan& p, const std::string& text) {
  for (const auto& w : p.warnings) {
    if (w.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(Pinning, NicOnSocketOneKeepsEveryStreamOnItsOwnCoreThere) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  const Plan p = must_plan(two_socket, 4, "0000:81:00.0");
  EXPECT_TRUE(p.port.pci);
  EXPECT_EQ(p.port.numa_node, 1);
  EXPECT_EQ(p.control.numa_node, 0) << "the control core stays off the NIC's node";
  std::set<unsigned> cores;
  for (const auto& s : p.streams) {
    EXPECT_EQ(s.numa_node, 1);
    EXPECT_NE(s.core, p.control.core);
    cores.insert(s.core);
  }
  EXPECT_EQ(cores.size(), 4u) << "no two streams on SMT siblings";
  EXPECT_TRUE(p.warnings.empty());
  const std::vector<std::string> expected{"-l", "0,16,18,20,22", "--main-lcore", "0", "--socket-mem", "64,1024"};
  EXPECT_EQ(p.eal_arguments(), expected);
  for (const auto& h : p.helpers) {
    EXPECT_EQ(h.numa_node, 0) << "helpers stay off the NIC's node";
    EXPECT_NE(h.pu, p.control.pu);
  }
}

TEST(Pinning, NotEnoughCoresFallsBackToSiblingsThenTheOtherNodeAndSaysWhatItCosts) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  const Plan nine = must_plan(two_socket, 9, "81:00.0");
  EXPECT_EQ(nine.streams[8].numa_node, 1);
  EXPECT_TRUE(any_warning_contains(nine, "SMT siblings")) << nine.to_text();
  EXPECT_FALSE(any_warning_contains(nine, "away from the NIC"));

  const Plan seventeen = must_plan(two_socket, 17, "81:00.0");
  EXPECT_EQ(seventeen.streams[16].numa_node, 0);
  EXPECT_TRUE(any_warning_contains(seventeen, "away from the NIC on node 1")) << seventeen.to_text();
  for (const auto& s : seventeen.streams) EXPECT_NE(s.core, seventeen.control.core) << "never the control core";

  auto too_many = plan(two_socket, {.streams = 31, .port = "81:00.0"});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message.find("offers 30"), std::string::npos) << too_many.error().message;
}

TEST(Pinning, SingleSocketWithSmt) {
  const Topology one_socket = load("one-socket-smt.xml");
  const Plan three = must_plan(one_socket, 3, "0000:3b:00.0");
  EXPECT_EQ(three.control.pu, 0u);
  EXPECT_EQ(three.streams[0].pu, 2u);
  EXPECT_EQ(three.streams[2].pu, 6u);
  EXPECT_TRUE(three.warnings.empty());
  const std::vector<std::string> args = three.eal_arguments();
  EXPECT_EQ(std::find(args.begin(), args.end(), "--socket-mem"), args.end()) << "one node: no per-socket memory list";
  const Plan four = must_plan(one_socket, 4, "0000:3b:00.0");
  EXPECT_TRUE(any_warning_contains(four, "share physical core"));
  EXPECT_NE(four.streams[3].pu, 1u) << "never the control core's sibling";
  EXPECT_FALSE(plan(one_socket, {.streams = 7, .port = "0000:3b:00.0"}).ok());
}

TEST(Pinning, TwoCoreVmLikeThisOne) {
  const Topology vm = load("vm-2-cores.xml");
  const Plan one = must_plan(vm, 1, "0000:00:03.0");
  EXPECT_EQ(one.control.pu, 0u);
  EXPECT_EQ(one.streams[0].pu, 1u);
  EXPECT_EQ(one.helpers[0].pu, 0u) << "no free core: the helper shares the control core";
  auto two = plan(vm, {.streams = 2, .port = "0000:00:03.0"});
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.error().message.find("2 streams need as many CPUs"), std::string::npos);
}

TEST(Pinning, StreamsMayShareTheCpusOfASmallMachineWithLcoresOfTheirOwn) {
  const Topology vm = load("vm-2-cores.xml");
  auto three = plan(vm, {.streams = 3, .port = "0000:00:03.0", .share_cpus = true});
  ASSERT_TRUE(three.ok()) << three.error().message;
  ASSERT_EQ(three->streams.size(), 3u);
  EXPECT_EQ(three->streams[0].pu, 1u) << "the free core first";
  EXPECT_TRUE(three->shares_cpus());
  EXPECT_EQ(three->control.lcore, 0u);
  EXPECT_EQ(three->stream_lcores(), (std::vector<unsigned>{1, 2, 3})) << "each stream an lcore of its own";
  EXPECT_TRUE(any_warning_contains(*three, "oversubscribed"));
  const std::vector<std::string> args = three->eal_arguments();
  ASSERT_GE(args.size(), 4u);
  EXPECT_EQ(args[0], "--lcores");
  EXPECT_EQ(args[1], "0@0,1@1,2@0,3@1") << "the second stream beside the control thread, which mostly sleeps";
  EXPECT_EQ(args[3], "0") << "the control thread is the main lcore";
}

TEST(Pinning, CoresChosenByHandAreTakenAndCheckedAgainstTheMachine) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  auto chosen = plan(two_socket, {.streams = 2, .port = "0000:81:00.0", .control_cpu = 0, .stream_cpus = {9, 10}});
  ASSERT_TRUE(chosen.ok()) << chosen.error().message;
  EXPECT_EQ(chosen->control.pu, 0u);
  EXPECT_EQ(chosen->streams[0].pu, 9u);
  EXPECT_EQ(chosen->streams[1].pu, 10u);
  EXPECT_EQ(chosen->stream_lcores(), (std::vector<unsigned>{9, 10})) << "no sharing: the lcore is the CPU";
  EXPECT_EQ(chosen->eal_arguments()[0], "-l");
  auto miscounted = plan(two_socket, {.streams = 3, .port = "0000:81:00.0", .stream_cpus = {9, 10}});
  ASSERT_FALSE(miscounted.ok());
  EXPECT_NE(miscounted.error().message.find("--cores: 2 CPUs for 3 streams"), std::string::npos);
  auto missing = plan(two_socket, {.streams = 1, .port = "0000:81:00.0", .stream_cpus = {999}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("CPU 999 is not one of"), std::string::npos);
}

TEST(Pinning, VirtualDevicesLiveWhereTheirMemoryIs) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  const Plan p = must_plan(two_socket, 2, "net_memif0");
  EXPECT_FALSE(p.port.pci);
  EXPECT_EQ(p.port.numa_node, 0);
  for (const auto& s : p.streams) EXPECT_EQ(s.numa_node, 0);
  EXPECT_EQ(p.control.numa_node, 1);
}

TEST(Pinning, SyntheticTopologies) {
  auto synthetic = Topology::from_synthetic("pack:2 [numa] core:4 pu:2");
  ASSERT_TRUE(synthetic.ok());
  EXPECT_EQ(synthetic->summary(), "2 packages, 2 NUMA nodes, 8 cores, 16 PUs");
  const Plan p = must_plan(*synthetic, 3, "net_ring0");
  EXPECT_EQ(p.streams.size(), 3u);
}

TEST(Pinning, ErrorsNameWhatWasWrong) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  auto missing = plan(two_socket, {.streams = 1, .port = "0000:99:00.0"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no PCI device 0000:99:00.0"), std::string::npos);
  auto no_file = Topology::from_xml_file("/nonexistent/topology.xml");
  ASSERT_FALSE(no_file.ok());
  EXPECT_NE(no_file.error().message.find("/nonexistent/topology.xml"), std::string::npos);
  EXPECT_FALSE(plan(two_socket, {.streams = 0, .port = "net_ring0"}).ok());
}

TEST(Pinning, JsonCarriesThePlanAndItsReasons) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  const auto json = nlohmann::json::parse(must_plan(two_socket, 9, "81:00.0").to_json());
  EXPECT_EQ(json["streams"].size(), 9u);
  EXPECT_EQ(json["port"]["numa_node"], 1);
  EXPECT_FALSE(json["streams"][0]["why"].get<std::string>().empty());
  EXPECT_FALSE(json["warnings"].empty());
}

TEST(Pinning, OnThisMachinePinsAThreadAndBindsMemory) {
  auto live = Topology::from_system();
  ASSERT_TRUE(live.ok()) << live.error().message;
  const Plan p = must_plan(*live, 1, "net_ring0");
  ASSERT_TRUE(pin_current_thread(*live, p.streams[0].pu).ok());
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(CPU_COUNT(&set), 1);
  EXPECT_TRUE(CPU_ISSET(p.streams[0].pu, &set));
  // Let the thread run anywhere again for the tests that follow.
  CPU_ZERO(&set);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);

  constexpr std::size_t kBytes = 4 << 20;
  void* memory = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  const Status bound = bind_memory(*live, memory, kBytes, p.port.numa_node);
  if (!bound) {
    EXPECT_NE(bound.error().message.find("refused"), std::string::npos) << bound.error().message;
  }
  munmap(memory, kBytes);

  const Topology saved = load("vm-2-cores.xml");
  const Status foreign = pin_current_thread(saved, 0);
  ASSERT_FALSE(foreign.ok());
  EXPECT_NE(foreign.error().message.find("not this machine"), std::string::npos);
}

}  // namespace
}  // namespace pagewire::pinning
