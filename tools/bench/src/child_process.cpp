#include "pagewire/bench/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pagewire::bench {

Result<ChildProcess> ChildProcess::start(const std::string& program, const std::vector<std::string>& args,
                                         Output output) {
  int out[2] = {-1, -1};
  if (output == Output::kPipe && pipe2(out, O_CLOEXEC) != 0) {
    return make_error("cannot create a pipe for " + program + ": " + std::strerror(errno));
  }
  // Built before the fork: the child may only call async-signal-safe functions.
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t child = fork();
  if (child < 0) return make_error("cannot fork to run " + program + ": " + std::strerror(errno));
  if (child == 0) {
    if (output == Output::kPipe) dup2(out[1], STDOUT_FILENO);
    if (output == Output::kDiscard) {
      const int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
    }
    execvp(argv[0], argv.data());
    _exit(127);
  }
  FILE* stream = nullptr;
  if (output == Output::kPipe) {
    close(out[1]);
    stream = fdopen(out[0], "r");
  }
  return ChildProcess(program, child, stream);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : program_(std::move(other.program_)), pid_(other.pid_), out_(other.out_) {
  other.pid_ = -1;
  other.out_ = nullptr;
}

ChildProcess::~ChildProcess() {
  kill();
  if (out_ != nullptr) fclose(out_);
}

std::optional<std::string> ChildProcess::read_line() {
  if (out_ == nullptr) return std::nullopt;
  std::string line;
  for (int c; (c = fgetc(out_)) != EOF;) {
    if (c == '\n') return line;
    line += static_cast<char>(c);
  }
  if (line.empty()) return std::nullopt;
  return line;
}

std::string ChildProcess::read_all() {
  std::string text;
  while (auto line = read_line()) text += *line + "\n";
  return text;
}

Status ChildProcess::wait() {
  if (pid_ < 0) return Ok{};
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Ok{};
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return make_error("cannot run " + program_ + " (not found?)");
  return make_error(program_ + " " +
                    (WIFEXITED(status) ? "exited with " + std::to_string(WEXITSTATUS(status))
                                       : "died of signal " + std::to_string(WTERMSIG(status))));
}

void ChildProcess::kill() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace pagewire::bench
