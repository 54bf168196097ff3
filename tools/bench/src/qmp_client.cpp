#include "pagewire/bench/qmp_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace pagewire::bench {

namespace {

constexpr int kReplyTimeoutMs = 10000;  // QEMU answers at once; this is for a wedged one
constexpr std::size_t kMaxMessageBytes = 1 << 20;  // query-migrate is a few hundred bytes

}  // namespace

Result<QmpClient> QmpClient::connect(const std::string& socket_path, int timeout_ms) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof address.sun_path) return make_error("QMP socket path too long: " + socket_path);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(std::string("cannot create a unix socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
      QmpClient client(fd);
      auto greeting = client.read_message();
      if (!greeting) return greeting.error();
      if (!greeting->contains("QMP")) return make_error("QMP " + socket_path + ": no greeting but " + greeting->dump());
      if (auto entered = client.execute("qmp_capabilities"); !entered) return entered.error();
      return client;
    }
    const int error = errno;
    close(fd);
    if (std::chrono::steady_clock::now() > deadline) {
      return make_error("QMP " + socket_path + ": cannot connect within " + std::to_string(timeout_ms) +
                        " ms: " + std::strerror(error));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

QmpClient::QmpClient(QmpClient&& other) noexcept : fd_(other.fd_), buffered_(std::move(other.buffered_)) {
  other.fd_ = -1;
}

QmpClient::~QmpClient() {
  if (fd_ >= 0) close(fd_);
}

Result<nlohmann::json> QmpClient::execute(const std::string& command, const nlohmann::json& arguments) {
  nlohmann::json request{{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  const std::string line = request.dump() + "\n";
  if (send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return make_error("QMP " + command + ": cannot send: " + std::strerror(errno));
  }
  for (;;) {
    auto message = read_message();
    if (!message) return make_error("QMP " + command + ": " + message.error().message);
    if (message->contains("event")) continue;
    if (message->contains("return")) return (*message)["return"];
    if (message->contains("error")) {
      return make_error("QMP " + command + " refused: " + (*message)["error"].value("desc", message->dump()));
    }
    return make_error("QMP " + command + ": unexpected answer " + message->dump());
  }
}

// One JSON object per line (QEMU ends each with CRLF).
Result<nlohmann::json> QmpClient::read_message() {
  for (;;) {
    if (const auto newline = buffered_.find('\n'); newline != std::string::npos) {
      const std::string line = buffered_.substr(0, newline);
      buffered_.erase(0, newline + 1);
      auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded()) return make_error("not JSON: " + line);
      return parsed;
    }
    pollfd readable{fd_, POLLIN, 0};
    if (poll(&readable, 1, kReplyTimeoutMs) <= 0) return make_error("no answer within 10 s");
    char chunk[4096];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return make_error("QEMU closed the connection");
    buffered_.append(chunk, static_cast<std::size_t>(n));
    if (buffered_.size() > kMaxMessageBytes) return make_error("a message longer than 1 MiB without a line end");
  }
}

}  // namespace pagewire::bench
