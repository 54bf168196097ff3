// ISA-L igzip, stateless, raw deflate (no gzip/zlib wrapper: the record carries its own
// length and CRC). Each object owns its ISA-L state and level buffer, allocated once, so a
// data-path core compresses with no allocation. Owned by one core; not thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "pagewire/result.hpp"

struct isal_zstream;
struct inflate_state;

namespace pagewire::pagecodec {

inline constexpr int kMinDeflateLevel = 0;
inline constexpr int kMaxDeflateLevel = 3;

class DeflateCompressor {
 public:
  // level: 0 (fastest, Huffman-only static tables) .. 3 (best ratio ISA-L offers).
  static Result<DeflateCompressor> create(int level);

  // Compresses `in` into `out`. Returns the compressed size, or 0 when it does not fit in
  // out.size() (ISA-L's STATELESS_OVERFLOW): size out to what is worth sending and treat 0
  // as "send it raw".
  std::size_t compress(std::span<const std::byte> in, std::span<std::byte> out);

  int level() const { return level_; }

  DeflateCompressor(DeflateCompressor&&) noexcept;
  DeflateCompressor& operator=(DeflateCompressor&&) noexcept;
  ~DeflateCompressor();

 private:
  explicit DeflateCompressor(int level);
  int level_;
  std::unique_ptr<isal_zstream> stream_;
  std::unique_ptr<std::byte[]> level_buffer_;
  std::size_t level_buffer_bytes_;
};

class DeflateDecompressor {
 public:
  DeflateDecompressor();
  DeflateDecompressor(DeflateDecompressor&&) noexcept;
  DeflateDecompressor& operator=(DeflateDecompressor&&) noexcept;
  ~DeflateDecompressor();

  // Inflates `in` into `out`; true only when the stream is valid, ends within `in`, and
  // yields exactly out.size() bytes. Never writes past `out`.
  bool decompress_exact(std::span<const std::byte> in, std::span<std::byte> out);

  // The same for output in pieces (pages in different memory blocks): start(), then
  // inflate_into() for each piece in order, then finished(). inflate_into() is true when the
  // piece was filled exactly; finished() when the stream ended there, `in` consumed. A
  // false from either means the stream was bad; nothing is written past a piece.
  void start(std::span<const std::byte> in);
  bool inflate_into(std::span<std::byte> piece);
  bool finished();

 private:
  std::unique_ptr<inflate_state> state_;
};

}  // namespace pagewire::pagecodec
