// libFuzzer target for the page-record decoder. Two attacks per input:
//  1. the input itself as a record stream, decoded into a region fenced by guard bytes,
//     and as a frame's payload a receiver may apply ahead of a hole: whole_records() reads
//     only headers inside it, and what it takes decodes within the fence;
//  2. genuine records made from the input's bytes (every encoding: deltas, and copies of a
//     page the input may repeat),
//     corrupted at offsets the input chooses, decoded the same way. With no corruption the
//     destination must equal the source.
// The region is two blocks of guest memory (cut where the input says), fenced before,
// between and after: records that span the cut are written piece by piece. Either way
// nothing may be written outside the region and nothing may crash.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/pagecodec/page_map.hpp"
#include "pagewire/pagecodec/record_stream_reader.hpp"

namespace {

using namespace pagewire::pagecodec;

constexpr std::uint32_t kPage = 4096;
constexpr std::uint64_t kPages = 6;
constexpr std::size_t kGuard = 256;
constexpr std::byte kFence{0xa5};

// Pages [0, cut) then, after a fence, [cut, kPages); cut 0 or kPages: one block.
struct FencedRegion {
  explicit FencedRegion(std::uint64_t cut) : cut(cut % (kPages + 1)) {
    const MemoryBlock first{bytes.data() + kGuard, this->cut};
    const MemoryBlock second{bytes.data() + 2 * kGuard + this->cut * kPage, kPages - this->cut};
    std::vector<MemoryBlock> blocks;
    if (first.pages > 0) blocks.push_back(first);
    if (second.pages > 0) blocks.push_back(second);
    map = std::move(PageMap::create(blocks, kPage)).value();
  }
  void check_fences() const {
    for (std::size_t i = 0; i < kGuard; ++i) {
      if (bytes[i] != kFence || bytes[bytes.size() - 1 - i] != kFence || bytes[kGuard + cut * kPage + i] != kFence) {
        std::abort();
      }
    }
  }
  bool equals(const std::vector<std::byte>& source) const {
    for (std::uint64_t p = 0; p < kPages; ++p) {
      if (std::memcmp(map.page(p), source.data() + p * kPage, kPage) != 0) return false;
    }
    return true;
  }
  std::uint64_t cut;
  std::vector<std::byte> bytes = std::vector<std::byte>(3 * kGuard + kPages * kPage, kFence);
  PageMap map;
};

void decode_raw_input(const std::uint8_t* data, std::size_t size) {
  static auto decoder = Decoder::create(kPage, kPages);
  FencedRegion region(size > 0 ? data[size - 1] : 0);
  std::size_t applied = 0;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  (void)decoder->decode_all(input, region.map, &applied);
  region.check_fences();

  const bool whole = RecordStreamReader::whole_records(
      size,
      [&](std::size_t at, std::byte* header) {
        if (at + kRecordHeaderBytes > size) std::abort();  // a read past the payload
        std::memcpy(header, data + at, kRecordHeaderBytes);
      },
      [](Encoding) { return true; });
  if (!whole) return;
  static RecordStreamReader reader(kRecordHeaderBytes + 16 * kPage);
  reader.feed(input, [&](std::span<const std::byte> first, std::span<const std::byte> rest) {
    const ParsedRecord parsed = rest.empty() ? decoder->parse(first) : decoder->parse(first, rest);
    if (parsed.error == DecodeError::kNone) (void)decoder->apply(parsed.view, region.map);
    return true;
  });
  if (reader.pending() != 0) std::abort();  // whole records leave nothing half read
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
  FencedRegion region(data[3]);
  const PageMap source_pages = PageMap::contiguous(source.data(), kPages, kPage);

  for (std::uint32_t generation = 0; generation < 3; ++generation) {
    // Each round changes a few bytes, so the third round sends deltas.
    source[(generation * 977) % source.size()] ^= std::byte{0x3c};
    encoder->begin_round(all);
    const EncodeProgress progress = encoder->encode(source_pages, all, generation, records);
    std::span<std::byte> stream(records.data(), progress.bytes_written);
    const bool corrupt = generation == 2 && size > 8;
    if (corrupt) {
      for (std::size_t i = 8; i + 2 < size && i < 64; i += 3) {
        const std::size_t at = (std::size_t{data[i]} << 8 | data[i + 1]) % stream.size();
        stream[at] ^= std::byte(data[i + 2] | 1);
      }
    }
    std::size_t applied = 0;
    const DecodeError error = decoder->decode_all(stream, region.map, &applied);
    region.check_fences();
    if (!corrupt && (error != DecodeError::kNone || !region.equals(source))) {
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
