// A thread that reads a userfaultfd's page faults and hands each to a callback, until the
// object goes: the one loop behind synchronous write tracking (WriteFaultHandler) and
// postcopy's missing pages (LazyPages). The callback resolves the fault, or arranges for
// someone to, which wakes the faulting thread.
#pragma once

#include <linux/userfaultfd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "pagewire/result.hpp"

namespace pagewire::migration {

// What a fault message says (the kernel's struct for it has no name).
struct PageFault {
  std::uint64_t address;
  std::uint64_t flags;  // UFFD_PAGEFAULT_FLAG_*
};

class FaultThread {
 public:
  using OnFault = std::function<void(const PageFault& fault)>;

  // `uffd` (non-blocking) outlives the thread. `what` names the user in errors.
  static Result<std::unique_ptr<FaultThread>> start(int uffd, OnFault on_fault, const std::string& what);
  ~FaultThread();  // stops and joins the thread
  FaultThread(const FaultThread&) = delete;
  FaultThread& operator=(const FaultThread&) = delete;

 private:
  FaultThread(int uffd, int stop_fd, OnFault on_fault) : uffd_(uffd), stop_fd_(stop_fd), on_fault_(std::move(on_fault)) {}
  void serve();

  int uffd_;
  int stop_fd_;  // an eventfd: written once to end serve()
  OnFault on_fault_;
  std::thread thread_;
};

}  // namespace pagewire::migration
