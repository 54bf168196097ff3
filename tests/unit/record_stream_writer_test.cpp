// Frames cut from staged records carry exactly the record stream the encoder wrote, whether
// RAW payloads were copied or left in guest memory and sliced into the frames by reference.
#include "pagewire/pagecodec/record_stream_writer.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <vector>

#include "pages.hpp"
#include "pagewire/pagecodec/decoder.hpp"

namespace pagewire::pagecodec {
namespace {

using test::Bytes;

constexpr std::size_t kPage = 4096;

struct Guest {
  Bytes memory;
  std::vector<std::uint64_t> pages;
};

Guest make_guest(std::size_t count) {
  Guest guest{Bytes(count * kPage), {}};
  std::mt19937_64 rng(11);
  constexpr test::PageKind kinds[] = {test::PageKind::kRandom, test::PageKind::kZero, test::PageKind::kText,
                                      test::PageKind::kRandom, test::PageKind::kBinary};
  for (std::size_t p = 0; p < count; ++p) test::fill_page(guest.memory.data() + p * kPage, kPage, kinds[p % 5], rng);
  guest.pages.resize(count);
  std::iota(guest.pages.begin(), guest.pages.end(), 0);
  return guest;
}

pagecodec::Encoder make_encoder(std::size_t pages) {
  pagecodec::EncoderConfig config;
  config.page_size = kPage;
  config.region_pages = pages;
  config.delta_cache_bytes = 1 << 20;
  config.policy.deflate = false;
  return std::move(pagecodec::Encoder::create(config)).value();
}

struct Framed {
  Bytes stream;                    // the frames' payloads, back to back, references resolved
  std::size_t frames = 0;
  std::size_t referenced_bytes = 0;
  std::size_t split_records = 0;   // frames that began or continued a record they did not end
};

// Cuts every staged record into frames of `payload_bytes`, as a source stream does, and
// puts each frame's payload together the way a device gathers its chain.
Framed cut_frames(const Guest& guest, std::size_t payload_bytes, bool by_reference) {
  pagecodec::Encoder encoder = make_encoder(guest.pages.size());
  RecordStreamWriter staged(encoder.max_record_bytes(), payload_bytes);
  std::span<const std::uint64_t> pages = guest.pages;
  // The encoder only reads the guest.
  const auto memory = pagecodec::PageMap::contiguous(const_cast<std::byte*>(guest.memory.data()),
                                                     guest.memory.size() / kPage, kPage);
  Framed framed;
  Bytes payload(payload_bytes);
  while (true) {
    if (staged.bytes() < payload_bytes && !staged.splitting()) {
      staged.refill(encoder, memory, &pages, 1, by_reference);
    }
    const std::size_t bytes = staged.next_frame_bytes(payload_bytes);
    if (bytes == 0) break;
    EXPECT_LE(bytes, payload_bytes);
    std::fill(payload.begin(), payload.end(), std::byte{0xee});
    pagecodec::PageReferences references;
    staged.take(bytes, payload.data(), &references);
    for (std::size_t r = 0; r < references.count; ++r) {
      const auto& reference = references.items[r];
      EXPECT_LE(reference.offset + reference.length, bytes);
      EXPECT_GE(reference.bytes, guest.memory.data());
      EXPECT_LE(reference.bytes + reference.length, guest.memory.data() + guest.memory.size());
      std::memcpy(payload.data() + reference.offset, reference.bytes, reference.length);
      framed.referenced_bytes += reference.length;
    }
    framed.split_records += staged.splitting() ? 1 : 0;
    framed.stream.insert(framed.stream.end(), payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(bytes));
    ++framed.frames;
  }
  EXPECT_TRUE(pages.empty());
  EXPECT_TRUE(staged.empty());
  return framed;
}

class RecordStreamWriterTest : public ::testing::TestWithParam<std::size_t> {};

// Every frame's payload, references resolved, must continue the record stream exactly:
// decoding the frames back to back gives the guest.
void expect_decodes_to_guest(const Framed& framed, const Guest& guest) {
  pagecodec::Decoder decoder = std::move(pagecodec::Decoder::create(kPage, guest.pages.size())).value();
  Bytes destination(guest.memory.size());
  std::size_t records = 0;
  ASSERT_EQ(decoder.decode_all(framed.stream, pagecodec::PageMap::contiguous(destination.data(), destination.size() / kPage, kPage), &records), pagecodec::DecodeError::kNone);
  EXPECT_GT(records, 0u);
  EXPECT_TRUE(destination == guest.memory) << "decoded memory differs from the guest";
}

TEST_P(RecordStreamWriterTest, FramesByReferenceCarryTheRecordsExactly) {
  const Guest guest = make_guest(300);
  const std::size_t payload_bytes = GetParam();
  const Framed copied = cut_frames(guest, payload_bytes, false);
  const Framed referenced = cut_frames(guest, payload_bytes, true);
  EXPECT_EQ(copied.referenced_bytes, 0u);
  // Every page but the zero ones (1 in 5) is RAW, and went by reference.
  EXPECT_EQ(referenced.referenced_bytes, 240 * kPage);
  if (payload_bytes < kPage) {
    EXPECT_GT(referenced.split_records, 0u) << "pages were split over frames";
  }
  expect_decodes_to_guest(copied, guest);
  expect_decodes_to_guest(referenced, guest);
}

// MTU 1500 (pages split over three or four frames), a clamp at an odd size, and a jumbo
// frame holding two pages.
INSTANTIATE_TEST_SUITE_P(PayloadSizes, RecordStreamWriterTest, ::testing::Values(1422, 1000, 8922),
                         [](const auto& info) { return "Payload" + std::to_string(info.param); });

}  // namespace
}  // namespace pagewire::pagecodec
