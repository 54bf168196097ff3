// CRC32C of decoded bytes, as carried in RecordHeader::crc32c. Internal to pagecodec.
#pragma once

#include <isa-l/crc.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace pagewire::pagecodec {

// ISA-L's crc32_iscsi (hardware CRC32C where available) over at most 2 GiB at a time: its
// length is an int, and no record covers more (kMaxDeflateBatchPages x kMaxPageSize).
inline std::uint32_t crc32c(std::span<const std::byte> bytes) {
  return crc32_iscsi(const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(bytes.data())),
                     static_cast<int>(bytes.size()), 0xffffffffu);
}

}  // namespace pagewire::pagecodec
