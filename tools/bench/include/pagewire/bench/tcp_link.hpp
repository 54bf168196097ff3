// Kernel TCP between the same two hosts as a `bench link` run, for the figure iperf3 users
// compare against: one connection, the client sending for a while, the server reading
// until it ends. Two hosts, not loopback: the server listens on a port of its own, the
// client connects to the address it is given.
#pragma once

#include <cstdint>
#include <string>

#include "pagewire/result.hpp"

namespace pagewire::bench {

struct TcpLinkResult {
  std::uint64_t bytes = 0;
  double seconds = 0;  // first byte to the last (sender: to its close)
  double gbps() const { return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0; }
};

// The server's half: listens from open() on (before the pagewire run, so that the client
// finds it whenever it comes), then receive() takes one connection and reads it to its end.
class TcpLinkServer {
 public:
  static Result<TcpLinkServer> open(std::uint16_t port);
  TcpLinkServer(TcpLinkServer&& other) noexcept;
  TcpLinkServer& operator=(TcpLinkServer&&) = delete;
  ~TcpLinkServer();

  Result<TcpLinkResult> receive(std::uint32_t timeout_ms) const;

 private:
  explicit TcpLinkServer(int listener) : listener_(listener) {}
  int listener_;
};

// The client's half: connects to "HOST:PORT" (IPv4) and sends for `seconds`.
Result<TcpLinkResult> tcp_link_send(const std::string& address, double seconds, std::uint32_t timeout_ms);

}  // namespace pagewire::bench
