#include "pagewire/bench/tcp_link.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

namespace pagewire::bench {

namespace {

using Clock = std::chrono::steady_clock;

Error system_error(const std::string& what) { return make_error(ErrorCode::kSystem, what + ": " + std::strerror(errno)); }

// Waits up to `timeout_ms` for `fd` to become readable (a connection to accept, or data).
bool readable_within(int fd, std::uint32_t timeout_ms) {
  pollfd watched{fd, POLLIN, 0};
  return poll(&watched, 1, static_cast<int>(timeout_ms)) == 1;
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Result<TcpLinkServer> TcpLinkServer::open(std::uint16_t port) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return system_error("--tcp-port: socket");
  TcpLinkServer server(listener);  // closes it on any return below
  const int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || listen(listener, 1) != 0) {
    return system_error("--tcp-port " + std::to_string(port));
  }
  return server;
}

TcpLinkServer::TcpLinkServer(TcpLinkServer&& other) noexcept : listener_(std::exchange(other.listener_, -1)) {}

TcpLinkServer::~TcpLinkServer() {
  if (listener_ >= 0) close(listener_);
}

Result<TcpLinkResult> TcpLinkServer::receive(std::uint32_t timeout_ms) const {
  if (!readable_within(listener_, timeout_ms)) {
    return make_error(ErrorCode::kTimeout, "no TCP client within " + std::to_string(timeout_ms / 1000) + " s");
  }
  const int connection = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
  if (connection < 0) return system_error("TCP accept");
  std::vector<char> buffer(1 << 20);
  TcpLinkResult result;
  Clock::time_point first{}, last{};
  while (readable_within(connection, timeout_ms)) {
    const ssize_t n = recv(connection, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    if (result.bytes == 0) first = Clock::now();
    last = Clock::now();
    result.bytes += static_cast<std::uint64_t>(n);
  }
  close(connection);
  result.seconds = result.bytes > 0 ? seconds_between(first, last) : 0;
  return result;
}

Result<TcpLinkResult> tcp_link_send(const std::string& address, double seconds, std::uint32_t timeout_ms) {
  const auto colon = address.rfind(':');
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  const std::string host = colon == std::string::npos ? "" : address.substr(0, colon);
  const long port = colon == std::string::npos ? 0 : std::strtol(address.c_str() + colon + 1, nullptr, 10);
  if (inet_pton(AF_INET, host.c_str(), &peer.sin_addr) != 1 || port <= 0 || port > 65535) {
    return make_error(ErrorCode::kConfiguration, "--tcp " + address + ": expected IPV4:PORT, e.g. 192.0.2.7:5201");
  }
  peer.sin_port = htons(static_cast<std::uint16_t>(port));
  const int connection = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connection < 0) return system_error("--tcp: socket");
  const timeval wait{static_cast<time_t>(timeout_ms / 1000), static_cast<suseconds_t>(timeout_ms % 1000 * 1000)};
  setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
  if (connect(connection, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0) {
    const Error error = system_error("--tcp " + address);
    close(connection);
    return error;
  }
  const std::vector<char> buffer(1 << 20, 'p');
  TcpLinkResult result;
  const auto start = Clock::now();
  while (seconds_between(start, Clock::now()) < seconds) {
    const ssize_t n = send(connection, buffer.data(), buffer.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      const Error error = system_error("--tcp " + address + ": send");
      close(connection);
      return error;
    }
    result.bytes += static_cast<std::uint64_t>(n);
  }
  close(connection);
  result.seconds = seconds_between(start, Clock::now());
  return result;
}

}  // namespace pagewire::bench
