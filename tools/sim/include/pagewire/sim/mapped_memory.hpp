// Anonymous memory mapped with MAP_POPULATE: every page is faulted in before anything is
// timed. A first touch costs ~15 us per 4 KiB page on the VMs we run on, which would
// otherwise dominate every figure.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "pagewire/result.hpp"

namespace pagewire::sim {

class MappedMemory {
 public:
  static Result<MappedMemory> allocate(std::size_t bytes);
  // A private, pre-faulted copy-on-write view of a file: writes never reach the file, so a
  // migration (and the guest model writing into it) leaves the image on disk intact.
  // `extra_bytes` of zeros follow the file's content (room for device state).
  static Result<MappedMemory> map_file_private(const std::string& path, std::size_t extra_bytes);

  MappedMemory(MappedMemory&& other) noexcept;
  MappedMemory& operator=(MappedMemory&& other) noexcept;
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  ~MappedMemory();

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::span<std::byte> bytes() { return {data_, size_}; }

 private:
  MappedMemory(std::byte* data, std::size_t size) : data_(data), size_(size) {}
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace pagewire::sim
