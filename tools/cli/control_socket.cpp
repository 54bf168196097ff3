#include "control_socket.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pagewire::cli {

namespace {

constexpr std::size_t kMaxLineBytes = 64 << 10;  // a request longer than this is not one

Error system_error(const std::string& what) { return make_error(ErrorCode::kSystem, what + ": " + std::strerror(errno)); }

// Sends all of `text`; false when the client went away.
bool send_all(int fd, const std::string& text) {
  for (std::size_t sent = 0; sent < text.size();) {
    const ssize_t n = send(fd, text.data() + sent, text.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

nlohmann::json refused(const std::string& why) { return {{"ok", false}, {"error", why}}; }

}  // namespace

Result<std::unique_ptr<ControlSocket>> ControlSocket::open(const std::string& path, Handlers handlers) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return make_error(ErrorCode::kConfiguration, "--control-socket " + path + ": expected a path of 1 to " +
                                                     std::to_string(sizeof address.sun_path - 1) + " bytes");
  }
  struct stat existing{};
  if (lstat(path.c_str(), &existing) == 0) {
    if (!S_ISSOCK(existing.st_mode)) {
      return make_error(ErrorCode::kConfiguration, "--control-socket " + path + ": a file that is not a socket is there");
    }
    unlink(path.c_str());  // a socket left by an earlier run
  }
  std::memcpy(address.sun_path, path.c_str(), path.size());
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return system_error("--control-socket: socket");
  if (bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || listen(listener, 4) != 0) {
    const Error error = system_error("--control-socket " + path);
    close(listener);
    return error;
  }
  const int stop = eventfd(0, EFD_CLOEXEC);
  if (stop < 0) {
    close(listener);
    unlink(path.c_str());
    return system_error("--control-socket: eventfd");
  }
  std::unique_ptr<ControlSocket> control(new ControlSocket(path, listener, stop, std::move(handlers)));
  control->thread_ = std::thread([c = control.get()] { c->serve(); });
  return control;
}

ControlSocket::ControlSocket(std::string path, int listener, int stop, Handlers handlers)
    : path_(std::move(path)), listener_(listener), stop_(stop), handlers_(std::move(handlers)) {}

ControlSocket::~ControlSocket() {
  const std::uint64_t one = 1;
  if (write(stop_, &one, sizeof one) != sizeof one) std::abort();  // the thread would never end
  thread_.join();
  close(listener_);
  close(stop_);
  unlink(path_.c_str());
}

void ControlSocket::serve() {
  while (true) {
    std::array<pollfd, 2> watched{pollfd{listener_, POLLIN, 0}, pollfd{stop_, POLLIN, 0}};
    if (poll(watched.data(), watched.size(), -1) < 0 && errno != EINTR) return;
    if (watched[1].revents != 0) return;
    if ((watched[0].revents & POLLIN) == 0) continue;
    const int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    // A client that never reads its answers must not hold this thread (and the end's exit).
    const timeval patience{.tv_sec = 1, .tv_usec = 0};
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &patience, sizeof patience);
    serve_client(client);
    close(client);
  }
}

void ControlSocket::serve_client(int client) {
  std::string pending;
  std::array<char, 4096> buffer{};
  while (true) {
    std::array<pollfd, 2> watched{pollfd{client, POLLIN, 0}, pollfd{stop_, POLLIN, 0}};
    if (poll(watched.data(), watched.size(), -1) < 0 && errno != EINTR) return;
    if (watched[1].revents != 0) return;
    const ssize_t n = recv(client, buffer.data(), buffer.size(), 0);
    if (n <= 0) return;
    pending.append(buffer.data(), static_cast<std::size_t>(n));
    for (std::size_t end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
      const std::string line = pending.substr(0, end);
      pending.erase(0, end + 1);
      if (!send_all(client, answer(line).dump() + "\n")) return;
    }
    if (pending.size() > kMaxLineBytes) {
      send_all(client, refused("a request line longer than 64 KiB").dump() + "\n");
      return;
    }
  }
}

nlohmann::json ControlSocket::answer(const std::string& line) const {
  const nlohmann::json request = nlohmann::json::parse(line, nullptr, false);
  if (request.is_discarded() || !request.is_object() || !request.contains("command") ||
      !request["command"].is_string()) {
    return refused("expected one JSON object per line with a \"command\": query, set or cancel");
  }
  const std::string command = request["command"];
  if (command == "query") return {{"ok", true}, {"status", handlers_.status()}};
  if (command == "cancel") {
    handlers_.cancel(request.value("reason", std::string("cancelled through the control socket")));
    return {{"ok", true}};
  }
  if (command == "set") {
    if (!handlers_.set) return refused("set: this end has nothing to set (the source has max_gbps, downtime_limit_ms)");
    if (Status applied = handlers_.set(request); !applied) return refused("set: " + applied.error().message);
    return {{"ok", true}, {"status", handlers_.status()}};
  }
  return refused("command \"" + command + "\": expected query, set or cancel");
}

}  // namespace pagewire::cli
