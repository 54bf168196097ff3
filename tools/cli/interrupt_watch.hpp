// SIGINT and SIGTERM turned into a call: the handler only sets a flag (about all a signal
// handler may do), and a thread that watches it calls `on_signal` once, with the signal's
// name, where allocating and sending frames are allowed. While no watch exists, the default
// handlers are in place (the signals end the process).
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace pagewire::cli {

class InterruptWatch {
 public:
  explicit InterruptWatch(std::function<void(const char* signal_name)> on_signal);
  ~InterruptWatch();  // the default handlers again
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

  // The signal that fired, or 0.
  int fired() const;

 private:
  std::function<void(const char*)> on_signal_;
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

}  // namespace pagewire::cli
