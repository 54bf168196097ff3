// CRC32C of decoded bytes, as carried in RecordHeader::crc32c. Internal to pagecodec.
#pragma once

#include <isa-l/crc.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace pagewire::pagecodec {

inline constexpr std::uint32_t kCrc32cSeed = 0xffffffffu;

// ISA-L's crc32_iscsi (hardware CRC32C where available) over at most 2 GiB at a time: its
// length is an int, and no record covers more (kMaxDeflateBatchPages x kMaxPageSize). Bytes
// in pieces: pass each piece's result as the next one's `crc`.
inline std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = kCrc32cSeed) {
  return crc32_iscsi(const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(bytes.data())),
                     static_cast<int>(bytes.size()), crc);
}

}  // namespace pagewire::pagecodec
