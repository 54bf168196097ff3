// Anonymous memory mapped with MAP_POPULATE: every page is faulted in before anything is
// timed. A first touch costs ~15 us per 4 KiB page on the VMs we run on, which would
// otherwise dominate every figure.
#pragma once

#include <cstddef>
#include <span>

#include "pagewire/result.hpp"

namespace pagewire::tools {

class MappedMemory {
 public:
  static Result<MappedMemory> allocate(std::size_t bytes);

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

}  // namespace pagewire::tools
