// A program the benchmarks run beside themselves (a pagewire end, QEMU, a sweep point): started
// with its arguments, its stdout read line by line, waited for or killed. The one place that
// forks and execs, so every caller gets the same error messages and no zombie is left.
//
// Threading: one owner thread.
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "pagewire/result.hpp"

namespace pagewire::bench {

class ChildProcess {
 public:
  enum class Output : std::uint8_t { kPipe, kDiscard, kInherit };

  // Runs `program` (a path, or a name looked up in PATH) with `args`. Its stdout is piped to
  // us (read_line), discarded, or ours; its stderr is ours unless discarded with stdout.
  static Result<ChildProcess> start(const std::string& program, const std::vector<std::string>& args,
                                    Output output = Output::kPipe);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // kills and reaps a child still running

  // The next line of its stdout, without the newline; nullopt at end of output.
  std::optional<std::string> read_line();
  // Everything it prints until it closes stdout.
  std::string read_all();
  // Waits for it to exit; an error names the program and its exit status or signal.
  Status wait();
  void kill();
  pid_t pid() const { return pid_; }

 private:
  ChildProcess(std::string program, pid_t pid, FILE* out) : program_(std::move(program)), pid_(pid), out_(out) {}
  std::string program_;
  pid_t pid_ = -1;  // -1 once reaped
  FILE* out_ = nullptr;
};

}  // namespace pagewire::bench
