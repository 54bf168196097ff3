// CPU claims between pagewire processes: a second process on the host plans its stream cores
// around the first one's, and a claim dies with its process however it ends.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "pagewire/pinning/cpu_claims.hpp"
#include "saved_topology.hpp"

namespace pagewire::pinning {
namespace {

Topology load(const std::string& name) { return test::load_saved_topology(name); }

// A claims directory of this test's own, removed afterwards.
class CpuClaimsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pagewire-claims-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::map<unsigned, int> held() {
    auto result = CpuClaims::held_elsewhere(directory_);
    EXPECT_TRUE(result.ok()) << (result.ok() ? "" : result.error().message);
    return result.ok() ? *result : std::map<unsigned, int>{};
  }

  std::string directory_;
};

TEST_F(CpuClaimsTest, AClaimIsSeenByOthersWithItsPidAndGoesWithItsOwner) {
  EXPECT_TRUE(held().empty());
  {
    auto claims = CpuClaims::claim(directory_, {3, 5, 3});
    ASSERT_TRUE(claims.ok()) << claims.error().message;
    EXPECT_EQ(claims->claimed(), (std::vector<unsigned>{3, 5}));
    EXPECT_TRUE(claims->shared().empty());
    // Open-file-description locks conflict between descriptions, even in one process: this
    // is what a second pagewire process sees.
    const std::map<unsigned, int> expected{{3, getpid()}, {5, getpid()}};
    EXPECT_EQ(held(), expected);

    auto second = CpuClaims::claim(directory_, {5, 6});
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second->claimed(), (std::vector<unsigned>{6}));
    EXPECT_EQ(second->shared(), (std::map<unsigned, int>{{5, getpid()}})) << "CPU 5 is the first claim's";
  }
  EXPECT_TRUE(held().empty()) << "destroyed claims release their CPUs";
}

TEST_F(CpuClaimsTest, AKilledProcessLeavesNoClaimBehind) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto claims = CpuClaims::claim(directory_, {7});
    const char byte = claims.ok() && claims->claimed().size() == 1 ? 'y' : 'n';
    (void)!write(ready[1], &byte, 1);
    pause();  // until killed
    _exit(0);
  }
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  EXPECT_EQ(held(), (std::map<unsigned, int>{{7, child}}));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(held().empty()) << "the kernel drops the lock of a process however it ends";
  close(ready[0]);
  close(ready[1]);
}

TEST_F(CpuClaimsTest, ASecondEndOnATwoCpuHostPlansCrosswise) {
  const Topology vm = load("vm-2-cores.xml");
  const PlanRequest one_stream{.streams = 1, .port = "vdev", .share_cpus = true};
  auto first = plan_and_claim(vm, one_stream, directory_);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->plan.control.pu, 0u);
  ASSERT_EQ(first->plan.streams.size(), 1u);
  EXPECT_EQ(first->plan.streams[0].pu, 1u);
  EXPECT_FALSE(first->plan.shares_cpus_with_others());

  // The second end's stream takes the CPU the first one's control thread sleeps on, and its
  // control thread shares the first one's stream CPU: each stream core polls a CPU alone.
  auto second = plan_and_claim(vm, one_stream, directory_);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->plan.streams[0].pu, 0u);
  EXPECT_EQ(second->plan.control.pu, 1u);
  EXPECT_TRUE(second->plan.shares_cpus_with_others());
  EXPECT_NE(second->plan.control.why.find("another pagewire process"), std::string::npos) << second->plan.control.why;
  EXPECT_TRUE(second->plan.warnings.empty()) << second->plan.warnings.front();
  EXPECT_EQ(held(), (std::map<unsigned, int>{{0, getpid()}, {1, getpid()}}));

  // A third finds both CPUs polled: it shares one and says with whom.
  auto third = plan_and_claim(vm, one_stream, directory_);
  ASSERT_TRUE(third.ok()) << third.error().message;
  ASSERT_EQ(third->plan.warnings.size(), 1u);
  EXPECT_NE(third->plan.warnings[0].find("pagewire process " + std::to_string(getpid())), std::string::npos)
      << third->plan.warnings[0];
}

TEST_F(CpuClaimsTest, OnALargeMachineStreamsAvoidBusyCoresAndControlStaysOffTheNicNode) {
  const Topology two_socket = load("two-socket-smt-nic-on-1.xml");
  PlanRequest request{.streams = 2, .port = "0000:81:00.0"};
  auto alone = plan(two_socket, request);
  ASSERT_TRUE(alone.ok()) << alone.error().message;
  for (const auto& stream : alone->streams) request.busy_cpus.insert(stream.pu);

  auto beside = plan(two_socket, request);
  ASSERT_TRUE(beside.ok()) << beside.error().message;
  EXPECT_EQ(beside->control.pu, alone->control.pu) << "enough free cores: control where it always goes";
  for (const auto& stream : beside->streams) {
    EXPECT_EQ(request.busy_cpus.count(stream.pu), 0u) << "stream on busy CPU " << stream.pu;
    EXPECT_EQ(stream.numa_node, 1) << "still on the NIC's node";
  }
  EXPECT_FALSE(beside->shares_cpus_with_others());
  EXPECT_TRUE(beside->warnings.empty());
}

TEST_F(CpuClaimsTest, CoresChosenByHandAreClaimedEvenWhenBusy) {
  const Topology vm = load("vm-2-cores.xml");
  auto first = plan_and_claim(vm, {.streams = 1, .port = "vdev", .share_cpus = true}, directory_);
  ASSERT_TRUE(first.ok());
  auto chosen = plan_and_claim(
      vm, {.streams = 1, .port = "vdev", .control_cpu = 0, .stream_cpus = {1}, .share_cpus = true}, directory_);
  ASSERT_TRUE(chosen.ok()) << chosen.error().message;
  EXPECT_EQ(chosen->plan.streams[0].pu, 1u) << "--cores is obeyed";
  EXPECT_EQ(chosen->plan.warnings.size(), 1u);
  EXPECT_EQ(chosen->claims.shared().count(1), 1u);
}

TEST(CpuClaimsDirectory, AnEnvironmentVariableChoosesIt) {
  setenv("PAGEWIRE_CLAIMS_DIR", "/tmp/somewhere-else", 1);
  EXPECT_EQ(CpuClaims::default_directory(), "/tmp/somewhere-else");
  unsetenv("PAGEWIRE_CLAIMS_DIR");
  EXPECT_NE(CpuClaims::default_directory(), "/tmp/somewhere-else");
}

}  // namespace
}  // namespace pagewire::pinning
