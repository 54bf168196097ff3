// A running migration's control channel, as QEMU's QMP is for its migrations: a Unix
// stream socket (`--control-socket PATH`) that speaks JSON lines, one request and one answer
// per line (docs/json.md, "Control socket"):
//   {"command": "query"}                                   -> {"ok": true, "status": {...}}
//   {"command": "set", "max_gbps": 2, "downtime_limit_ms": 50} -> {"ok": true, "status": {...}}
//   {"command": "cancel"}                                  -> {"ok": true}
// Any other line gets {"ok": false, "error": "..."} naming what was expected.
//
// Threading: a thread of its own serves one client at a time and calls the handlers on
// itself, so they must be safe beside the migration (Source::set_max_gbps and cancel are).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "pagewire/result.hpp"

namespace pagewire::cli {

class ControlSocket {
 public:
  struct Handlers {
    std::function<nlohmann::json()> status;
    // Applies what `request` sets; an error names the field. Empty: "set" is refused.
    std::function<Status(const nlohmann::json& request)> set;
    std::function<void(const std::string& reason)> cancel;
  };

  // Binds `path` (an existing socket file there is replaced; any other file is an error).
  static Result<std::unique_ptr<ControlSocket>> open(const std::string& path, Handlers handlers);
  ~ControlSocket();  // stops serving, removes the socket file

  // The answer to one request line (what the thread writes back).
  nlohmann::json answer(const std::string& line) const;

 private:
  ControlSocket(std::string path, int listener, int stop, Handlers handlers);
  void serve();
  void serve_client(int client);

  std::string path_;
  int listener_;
  int stop_;  // an eventfd written once to end serve()
  Handlers handlers_;
  std::thread thread_;
};

}  // namespace pagewire::cli
