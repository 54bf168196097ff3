#include "pagewire/pagecodec/deflate.hpp"

#include <isa-l/igzip_lib.h>

#include <string>

namespace pagewire::pagecodec {

namespace {

std::size_t level_buffer_bytes_for(int level) {
  switch (level) {
    case 1: return ISAL_DEF_LVL1_DEFAULT;
    case 2: return ISAL_DEF_LVL2_DEFAULT;
    case 3: return ISAL_DEF_LVL3_DEFAULT;
    default: return 0;
  }
}

}  // namespace

DeflateCompressor::DeflateCompressor(int level)
    : level_(level),
      stream_(std::make_unique<isal_zstream>()),
      level_buffer_bytes_(level_buffer_bytes_for(level)) {
  if (level_buffer_bytes_ > 0) level_buffer_ = std::make_unique<std::byte[]>(level_buffer_bytes_);
}

DeflateCompressor::DeflateCompressor(DeflateCompressor&&) noexcept = default;
DeflateCompressor& DeflateCompressor::operator=(DeflateCompressor&&) noexcept = default;
DeflateCompressor::~DeflateCompressor() = default;

Result<DeflateCompressor> DeflateCompressor::create(int level) {
  if (level < kMinDeflateLevel || level > kMaxDeflateLevel) {
    return make_error("deflate level " + std::to_string(level) + " is not supported: expected " +
                      std::to_string(kMinDeflateLevel) + ".." + std::to_string(kMaxDeflateLevel));
  }
  return DeflateCompressor(level);
}

std::size_t DeflateCompressor::compress(std::span<const std::byte> in, std::span<std::byte> out) {
  isal_zstream& s = *stream_;
  isal_deflate_stateless_init(&s);
  s.level = static_cast<std::uint32_t>(level_);
  s.level_buf = reinterpret_cast<std::uint8_t*>(level_buffer_.get());
  s.level_buf_size = static_cast<std::uint32_t>(level_buffer_bytes_);
  s.gzip_flag = IGZIP_DEFLATE;
  s.flush = NO_FLUSH;
  s.end_of_stream = 1;
  // ISA-L's API is not const-correct; it only reads the input.
  s.next_in = const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(in.data()));
  s.avail_in = static_cast<std::uint32_t>(in.size());
  s.next_out = reinterpret_cast<std::uint8_t*>(out.data());
  s.avail_out = static_cast<std::uint32_t>(out.size());
  if (isal_deflate_stateless(&s) != COMP_OK) return 0;
  return s.total_out;
}

DeflateDecompressor::DeflateDecompressor() : state_(std::make_unique<inflate_state>()) {}
DeflateDecompressor::DeflateDecompressor(DeflateDecompressor&&) noexcept = default;
DeflateDecompressor& DeflateDecompressor::operator=(DeflateDecompressor&&) noexcept = default;
DeflateDecompressor::~DeflateDecompressor() = default;

bool DeflateDecompressor::decompress_exact(std::span<const std::byte> in,
                                           std::span<std::byte> out) {
  inflate_state& s = *state_;
  isal_inflate_init(&s);
  s.crc_flag = ISAL_DEFLATE;
  s.next_in = const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(in.data()));
  s.avail_in = static_cast<std::uint32_t>(in.size());
  s.next_out = reinterpret_cast<std::uint8_t*>(out.data());
  s.avail_out = static_cast<std::uint32_t>(out.size());
  const int rc = isal_inflate_stateless(&s);
  // A valid record's stream ends exactly at the end of the payload with the page filled.
  return rc == ISAL_DECOMP_OK && s.block_state == ISAL_BLOCK_FINISH && s.avail_out == 0 &&
         s.avail_in == 0;
}

void DeflateDecompressor::start(std::span<const std::byte> in) {
  inflate_state& s = *state_;
  isal_inflate_init(&s);
  s.crc_flag = ISAL_DEFLATE;
  s.next_in = const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(in.data()));
  s.avail_in = static_cast<std::uint32_t>(in.size());
}

bool DeflateDecompressor::inflate_into(std::span<std::byte> piece) {
  // Stateful inflate keeps the history window itself, so back-references may reach into
  // an earlier piece wherever it lies.
  inflate_state& s = *state_;
  s.next_out = reinterpret_cast<std::uint8_t*>(piece.data());
  s.avail_out = static_cast<std::uint32_t>(piece.size());
  while (s.avail_out > 0) {
    const std::uint32_t before = s.avail_out;
    const int rc = isal_inflate(&s);
    if (rc != ISAL_DECOMP_OK || s.block_state == ISAL_BLOCK_FINISH) break;
    if (s.avail_out == before && s.avail_in == 0) break;  // input ran out short of the piece
  }
  return s.avail_out == 0;
}

bool DeflateDecompressor::finished() {
  inflate_state& s = *state_;
  if (s.block_state != ISAL_BLOCK_FINISH) {
    // The last piece filled before the stream's end-of-block code was read: read on, into
    // a byte that must stay unwritten.
    std::uint8_t beyond = 0;
    s.next_out = &beyond;
    s.avail_out = 1;
    if (isal_inflate(&s) != ISAL_DECOMP_OK || s.avail_out == 0) return false;
  }
  return s.block_state == ISAL_BLOCK_FINISH && s.avail_in == 0;
}

}  // namespace pagewire::pagecodec
