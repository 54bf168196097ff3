#include "pagewire/sim/mapped_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace pagewire::sim {

Result<MappedMemory> MappedMemory::allocate(std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                 -1, 0);
  if (p == MAP_FAILED) {
    return make_error("cannot map " + std::to_string(bytes >> 20) + " MiB: " + std::strerror(errno));
  }
  return MappedMemory(static_cast<std::byte*>(p), bytes);
}

Result<MappedMemory> MappedMemory::map_file_private(const std::string& path, std::size_t extra_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return make_error("--image " + path + ": cannot open it: " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0 || info.st_size <= 0) {
    ::close(fd);
    return make_error("--image " + path + ": expected a non-empty regular file");
  }
  const auto file_bytes = static_cast<std::size_t>(info.st_size);
  auto memory = allocate(file_bytes + extra_bytes);
  if (!memory) {
    ::close(fd);
    return memory.error();
  }
  // A private anonymous copy rather than MAP_PRIVATE of the file: pages stay in memory
  // however the file system behaves, and holes read back as zeros either way.
  std::size_t done = 0;
  while (done < file_bytes) {
    const ssize_t n = ::pread(fd, memory->data() + done, file_bytes - done, static_cast<off_t>(done));
    if (n <= 0) {
      ::close(fd);
      return make_error("--image " + path + ": read failed at byte " + std::to_string(done));
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return memory;
}

MappedMemory::MappedMemory(MappedMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedMemory& MappedMemory::operator=(MappedMemory&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedMemory::~MappedMemory() {
  if (data_ != nullptr) munmap(data_, size_);
}

}  // namespace pagewire::sim
