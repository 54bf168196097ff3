// libFuzzer target for the page-record decoder. Two attacks per input:
//  1. the input itself as a record stream, decoded into a region fenced by guard bytes;
//  2. genuine records made from the input's bytes (every encoding: deltas, and copies of a
//     page the input may repeat),
//     corrupted at offsets the input chooses, decoded the same way. With no corruption the
//     destination must equal the source.
// Either way nothing may be written outside the region and nothing may crash.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"

namespace {

using namespace pagewire::pagecodec;

constexpr std::uint32_t kPage = 4096;
constexpr std::uint64_t kPages = 6;
constexpr std::size_t kGuard = 256;
constexpr std::byte kFence{0xa5};

struct FencedRegion {
  std::vector<std::byte> bytes = std::vector<std::byte>(kGuard + kPages * kPage + kGuard, kFence);
  std::byte* pages() { return bytes.data() + kGuard; }
  void check_fences() const {
    for (std::size_t i = 0; i < kGuard; ++i) {
      if (bytes[i] != kFence || bytes[bytes.size() - 1 - i] != kFence) std::abort();
    }
  }
};

void decode_raw_input(const std::uint8_t* data, std::size_t size) {
  static auto decoder = Decoder::create(kPage, kPages);
  FencedRegion region;
  std::size_t applied = 0;
  (void)decoder->decode_all({reinterpret_cast<const std::byte*>(data), size}, region.pages(),
                            &applied);
  region.check_fences();
}

void corrupt_genuine_records(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return;
  // Source pages: tiled from the input, some left zero, so every encoding appears.
  std::vector<std::byte> source(kPages * kPage);
  for (std::uint64_t p = 1; p < kPages; p += 2) {
    for (std::size_t i = 0; i < kPage; ++i) source[p * kPage + i] = std::byte(data[(i * p) % size]);
  }
  if ((data[2] & 1) != 0) std::memcpy(&source[5 * kPage], &source[1 * kPage], kPage);  // a COPY of page 1
  EncoderConfig config{.page_size = kPage, .region_pages = kPages, .delta_cache_bytes = kPages * kPage};
  config.policy.deflate = (data[0] & 1) != 0;
  config.policy.deflate_batch_pages = 1 + data[1] % 4;
  auto encoder = Encoder::create(config);
  std::vector<std::uint64_t> all(kPages);
  std::iota(all.begin(), all.end(), 0);
  std::vector<std::byte> records(4 * kPages * kPage);
  auto decoder = Decoder::create(kPage, kPages);
  FencedRegion region;

  for (std::uint32_t generation = 0; generation < 3; ++generation) {
    // Each round changes a few bytes, so the third round sends deltas.
    source[(generation * 977) % source.size()] ^= std::byte{0x3c};
    encoder->begin_round(all);
    const EncodeProgress progress = encoder->encode(source.data(), all, generation, records);
    std::span<std::byte> stream(records.data(), progress.bytes_written);
    const bool corrupt = generation == 2 && size > 8;
    if (corrupt) {
      for (std::size_t i = 8; i + 2 < size && i < 64; i += 3) {
        const std::size_t at = (std::size_t{data[i]} << 8 | data[i + 1]) % stream.size();
        stream[at] ^= std::byte(data[i + 2] | 1);
      }
    }
    std::size_t applied = 0;
    const DecodeError error = decoder->decode_all(stream, region.pages(), &applied);
    region.check_fences();
    if (!corrupt && (error != DecodeError::kNone ||
                     std::memcmp(region.pages(), source.data(), source.size()) != 0)) {
      std::abort();  // genuine records must reproduce the source exactly
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  decode_raw_input(data, size);
  corrupt_genuine_records(data, size);
  return 0;
}
