#include "pagewire/pinning/cpu_claims.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace pagewire::pinning {

namespace {

constexpr int kPlanAttempts = 4;  // planning races are rare; a few re-plans settle them

std::string claim_path(const std::string& directory, unsigned cpu) {
  return directory + "/cpu" + std::to_string(cpu);
}

// "cpu12" -> 12; anything else is not a claim file.
bool parse_cpu_name(const std::string& name, unsigned* cpu) {
  if (name.size() < 4 || name.compare(0, 3, "cpu") != 0) return false;
  const char* first = name.data() + 3;
  const char* last = name.data() + name.size();
  auto [end, error] = std::from_chars(first, last, *cpu);
  return error == std::errc{} && end == last;
}

flock whole_file_lock(short type) {
  flock lock{};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  return lock;  // l_start = l_len = 0: the whole file
}

int read_pid(int fd) {
  char text[16] = {};
  const ssize_t n = pread(fd, text, sizeof text - 1, 0);
  int pid = 0;
  if (n > 0) std::from_chars(text, text + n, pid);
  return pid;
}

Error system_error(const std::string& what, const std::string& path) {
  return make_error("CPU claims: cannot " + what + " " + path + ": " + std::strerror(errno) +
                    " (set PAGEWIRE_CLAIMS_DIR to a writable directory)");
}

}  // namespace

std::string CpuClaims::default_directory() {
  if (const char* chosen = std::getenv("PAGEWIRE_CLAIMS_DIR"); chosen != nullptr && *chosen != '\0') return chosen;
  if (geteuid() == 0) return "/run/pagewire";
  return "/tmp/pagewire-claims-" + std::to_string(geteuid());
}

Result<std::map<unsigned, int>> CpuClaims::held_elsewhere(const std::string& directory) {
  std::map<unsigned, int> held;
  std::error_code error;
  std::filesystem::directory_iterator entries(directory, error);
  if (error) {
    if (error == std::errc::no_such_file_or_directory) return held;
    return make_error("CPU claims: cannot list " + directory + ": " + error.message());
  }
  for (const auto& entry : entries) {
    unsigned cpu = 0;
    if (!parse_cpu_name(entry.path().filename().string(), &cpu)) continue;
    const int fd = open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;  // removed meanwhile: not held
    // F_OFD_GETLK asks "would a write lock be refused?" without taking one.
    flock probe = whole_file_lock(F_WRLCK);
    if (fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) held[cpu] = read_pid(fd);
    close(fd);
  }
  return held;
}

Result<CpuClaims> CpuClaims::claim(const std::string& directory, const std::vector<unsigned>& cpus) {
  if (mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) return system_error("create", directory);
  CpuClaims claims;
  for (unsigned cpu : cpus) {
    if (std::find(claims.claimed_.begin(), claims.claimed_.end(), cpu) != claims.claimed_.end()) continue;
    const std::string path = claim_path(directory, cpu);
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return system_error("open", path);
    flock lock = whole_file_lock(F_WRLCK);
    if (fcntl(fd, F_OFD_SETLK, &lock) != 0) {
      if (errno != EAGAIN && errno != EACCES) {
        close(fd);
        return system_error("lock", path);
      }
      claims.shared_[cpu] = read_pid(fd);
      close(fd);
      continue;
    }
    const std::string pid = std::to_string(getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      close(fd);
      return system_error("write", path);
    }
    claims.descriptors_.push_back(fd);
    claims.claimed_.push_back(cpu);
  }
  return claims;
}

CpuClaims::CpuClaims(CpuClaims&& other) noexcept
    : descriptors_(std::move(other.descriptors_)),
      claimed_(std::move(other.claimed_)),
      shared_(std::move(other.shared_)) {
  other.descriptors_.clear();
}

CpuClaims& CpuClaims::operator=(CpuClaims&& other) noexcept {
  if (this != &other) {
    release();
    descriptors_ = std::move(other.descriptors_);
    claimed_ = std::move(other.claimed_);
    shared_ = std::move(other.shared_);
    other.descriptors_.clear();
  }
  return *this;
}

CpuClaims::~CpuClaims() { release(); }

void CpuClaims::release() {
  // Closing the only descriptor of the open file description drops its lock. The file stays:
  // removing it could race with a process that has just opened it to claim.
  for (int fd : descriptors_) close(fd);
  descriptors_.clear();
  claimed_.clear();
}

Result<ClaimedPlan> plan_and_claim(const Topology& topology, PlanRequest request, const std::string& directory) {
  for (int attempt = 1;; ++attempt) {
    auto held = CpuClaims::held_elsewhere(directory);
    if (!held) return held.error();
    request.busy_cpus.clear();
    for (const auto& [cpu, pid] : *held) request.busy_cpus.insert(cpu);
    auto placed = plan(topology, request);
    if (!placed) return placed.error();
    std::vector<unsigned> stream_cpus;
    for (const auto& stream : placed->streams) stream_cpus.push_back(stream.pu);
    auto claims = CpuClaims::claim(directory, stream_cpus);
    if (!claims) return claims.error();
    // Sharing the plan chose knowingly (busy_cpus) is settled; a CPU claimed between our
    // look and our claim is a race to plan around, while attempts last.
    bool raced = false;
    for (const auto& [cpu, pid] : claims->shared()) raced |= request.busy_cpus.count(cpu) == 0;
    if (raced && attempt < kPlanAttempts && request.stream_cpus.empty()) continue;
    for (const auto& [cpu, pid] : claims->shared()) {
      placed->busy_cpus.insert(cpu);
      placed->warnings.push_back("CPU " + std::to_string(cpu) + " is also a stream core of pagewire process " +
                                 std::to_string(pid) + ": both poll it, each at a share of its speed");
    }
    return ClaimedPlan{std::move(placed).value(), std::move(claims).value()};
  }
}

}  // namespace pagewire::pinning
