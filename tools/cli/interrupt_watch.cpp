#include "interrupt_watch.hpp"

#include <csignal>

#include <chrono>

namespace pagewire::cli {
namespace {

std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "written from a signal handler");

void on_signal(int signal) { g_signal.store(signal, std::memory_order_relaxed); }

void install(void (*handler)(int)) {
  struct sigaction action{};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGINT, SIGTERM}) sigaction(signal, &action, nullptr);
}

}  // namespace

InterruptWatch::InterruptWatch(std::function<void(const char*)> on_signal_call) : on_signal_(std::move(on_signal_call)) {
  g_signal.store(0);
  install(on_signal);
  watcher_ = std::thread([this] {
    while (!stop_.load(std::memory_order_relaxed)) {
      if (const int signal = g_signal.load(std::memory_order_relaxed); signal != 0) {
        on_signal_(signal == SIGINT ? "SIGINT" : "SIGTERM");
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
}

InterruptWatch::~InterruptWatch() {
  stop_.store(true);
  watcher_.join();
  install(SIG_DFL);
}

int InterruptWatch::fired() const { return g_signal.load(std::memory_order_relaxed); }

}  // namespace pagewire::cli
