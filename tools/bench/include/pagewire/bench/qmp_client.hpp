// A QEMU Machine Protocol client over a unix socket, enough to drive a migration: connect,
// negotiate capabilities, execute commands and read their answers (events that arrive in
// between are skipped). The QMP specification is QEMU's docs/interop/qmp-spec.
//
// Threading: one owner thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "pagewire/result.hpp"

namespace pagewire::bench {

class QmpClient {
 public:
  // Connects to `socket_path`, retrying until `timeout_ms` passes (QEMU creates the socket a
  // moment after it starts), reads the greeting and enters command mode.
  static Result<QmpClient> connect(const std::string& socket_path, int timeout_ms);

  QmpClient(QmpClient&& other) noexcept;
  QmpClient& operator=(QmpClient&&) = delete;
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;
  ~QmpClient();

  // {"execute": command, "arguments": arguments}: its "return" value, or an error with QEMU's
  // own description of what it refused.
  Result<nlohmann::json> execute(const std::string& command, const nlohmann::json& arguments = nullptr);

 private:
  explicit QmpClient(int fd) : fd_(fd) {}
  Result<nlohmann::json> read_message();
  int fd_ = -1;
  std::string buffered_;  // bytes received after the last complete line
};

}  // namespace pagewire::bench
