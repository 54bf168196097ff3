#include "fault_thread.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pagewire::migration {

Result<std::unique_ptr<FaultThread>> FaultThread::start(int uffd, OnFault on_fault, const std::string& what) {
  const int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) return make_error(ErrorCode::kSystem, what + ": eventfd: " + std::strerror(errno));
  std::unique_ptr<FaultThread> thread(new FaultThread(uffd, stop_fd, std::move(on_fault)));
  thread->thread_ = std::thread([t = thread.get()] { t->serve(); });
  return thread;
}

FaultThread::~FaultThread() {
  const std::uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof one) != sizeof one) std::abort();  // the thread would never end
  thread_.join();
  close(stop_fd_);
}

void FaultThread::serve() {
  std::array<pollfd, 2> watched{pollfd{uffd_, POLLIN, 0}, pollfd{stop_fd_, POLLIN, 0}};
  std::array<uffd_msg, 32> messages{};
  while (true) {
    if (poll(watched.data(), watched.size(), -1) < 0 && errno != EINTR) return;
    if (watched[1].revents != 0) return;
    const ssize_t bytes = read(uffd_, messages.data(), sizeof messages);
    if (bytes < 0) continue;  // EAGAIN: another wake-up took it
    for (std::size_t m = 0; m < static_cast<std::size_t>(bytes) / sizeof(uffd_msg); ++m) {
      if (messages[m].event != UFFD_EVENT_PAGEFAULT) continue;
      on_fault_(PageFault{.address = messages[m].arg.pagefault.address, .flags = messages[m].arg.pagefault.flags});
    }
  }
}

}  // namespace pagewire::migration
