// CPU claims between pagewire processes on one host. A stream core busy-polls its CPU; two
// processes (a source and a destination on one machine, two migrations at once) that each
// plan alone pick the same "best" CPUs and halve each other. So each process claims the CPUs
// of its stream cores with a lock file per CPU, and the next one plans around them.
//
// A claim is an open-file-description lock (fcntl F_OFD_SETLK) on `<dir>/cpu<N>`: the kernel
// drops it when the process exits, however it exits, so a crash never leaves a CPU claimed.
// The file holds the claimant's pid, for messages only.
//
// Threading: a CpuClaims is owned by one thread; the static functions may run anywhere.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pagewire/pinning/plan.hpp"
#include "pagewire/pinning/topology.hpp"
#include "pagewire/result.hpp"

namespace pagewire::pinning {

class CpuClaims {
 public:
  // $PAGEWIRE_CLAIMS_DIR if set; /run/pagewire for root; otherwise /tmp/pagewire-claims-<uid>.
  static std::string default_directory();

  // The CPUs another open claim holds now, each with the pid written in its file (0 when
  // unreadable). A directory that does not exist holds none.
  static Result<std::map<unsigned, int>> held_elsewhere(const std::string& directory);

  // Claims each CPU in `cpus` that no one else holds; a CPU held elsewhere is not claimed
  // again but listed in shared(). Fails only when the directory or a file cannot be made.
  static Result<CpuClaims> claim(const std::string& directory, const std::vector<unsigned>& cpus);

  CpuClaims() = default;
  CpuClaims(CpuClaims&& other) noexcept;
  CpuClaims& operator=(CpuClaims&& other) noexcept;
  CpuClaims(const CpuClaims&) = delete;
  CpuClaims& operator=(const CpuClaims&) = delete;
  ~CpuClaims();  // releases every claim

  const std::vector<unsigned>& claimed() const { return claimed_; }
  // CPUs asked for that another process held at the time, with its pid.
  const std::map<unsigned, int>& shared() const { return shared_; }

 private:
  void release();
  std::vector<int> descriptors_;
  std::vector<unsigned> claimed_;
  std::map<unsigned, int> shared_;
};

struct ClaimedPlan {
  Plan plan;
  CpuClaims claims;
};

// plan() around the CPUs other pagewire processes' stream cores hold (PlanRequest::busy_cpus),
// then claims the plan's stream CPUs. Two processes planning at the same instant may pick the
// same CPU: the later claim sees it and plans again, a few times, before it settles for
// sharing (a warning in the plan says so).
Result<ClaimedPlan> plan_and_claim(const Topology& topology, PlanRequest request, const std::string& directory);

}  // namespace pagewire::pinning
