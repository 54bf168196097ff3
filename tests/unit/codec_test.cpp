// Encoder -> records -> Decoder: the destination region must equal the source region byte
// for byte, for every page kind, every forced encoding, the policy's own choice and every
// page size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "pages.hpp"
#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"

namespace pagewire::pagecodec {
namespace {

using test::Bytes;
using test::PageKind;

constexpr PageKind kAllKinds[] = {PageKind::kZero,   PageKind::kText,        PageKind::kBinary,
                                  PageKind::kRandom, PageKind::kAlternating, PageKind::kSparse};

// Page counts of the blocks a region is cut into; empty: one block.
using Layout = std::vector<std::uint64_t>;

// Memory for `pages` pages in blocks allocated apart (so that no two are adjacent), and its
// map.
class BlockMemory {
 public:
  BlockMemory(std::uint32_t page_size, std::uint64_t pages, Layout layout) {
    if (layout.empty()) layout = {pages};
    EXPECT_EQ(std::accumulate(layout.begin(), layout.end(), std::uint64_t{0}), pages);
    std::vector<MemoryBlock> blocks;
    for (std::uint64_t block_pages : layout) {
      storage_.emplace_back(block_pages * page_size + page_size);  // a gap page apart
      blocks.push_back({storage_.back().data(), block_pages});
    }
    auto map = PageMap::create(blocks, page_size);
    EXPECT_TRUE(map.ok()) << (map.ok() ? "" : map.error().message);
    map_ = std::move(map).value();
  }
  const PageMap& map() const { return map_; }
  // The range [bytes, bytes + length) lies inside one block.
  bool holds(const std::byte* bytes, std::size_t length) const {
    return std::any_of(map_.blocks().begin(), map_.blocks().end(), [&](const MemoryBlock& b) {
      return bytes >= b.bytes && bytes + length <= b.bytes + b.pages * map_.page_size();
    });
  }

 private:
  std::vector<Bytes> storage_;
  PageMap map_;
};

// A source region with pages of every kind, and a destination that decodes into it; each
// may be cut into blocks, differently.
class Migration {
 public:
  Migration(std::uint32_t page_size, std::uint64_t pages, Policy policy,
            std::uint64_t cache_bytes = 1 << 20, Layout source_layout = {}, Layout destination_layout = {})
      : page_size_(page_size), source_(page_size, pages, std::move(source_layout)),
        destination_(page_size, pages, std::move(destination_layout)) {
    EncoderConfig config{.page_size = page_size,
                         .region_pages = pages,
                         .delta_cache_bytes = cache_bytes,
                         .policy = policy};
    auto encoder = Encoder::create(config);
    EXPECT_TRUE(encoder.ok()) << (encoder.ok() ? "" : encoder.error().message);
    encoder_.emplace(std::move(encoder).value());
    auto decoder = Decoder::create(page_size, pages);
    decoder_.emplace(std::move(decoder).value());
    std::mt19937_64 rng(page_size * pages);
    for (std::uint64_t p = 0; p < pages; ++p) {
      test::fill_page(page(p), page_size, kAllKinds[(p / 3) % 6], rng);
    }
  }

  std::byte* page(std::uint64_t index) { return source_.map().page(index); }
  std::uint64_t pages() const { return source_.map().pages(); }
  const PageMap& source() const { return source_.map(); }

  // Sends `indices` through a buffer of `buffer_bytes`, decoding every batch.
  void send(const std::vector<std::uint64_t>& indices, std::uint32_t generation,
            std::size_t buffer_bytes = 1 << 20) {
    Bytes buffer(buffer_bytes);
    std::span<const std::uint64_t> rest(indices);
    while (!rest.empty()) {
      const EncodeProgress progress = encoder_->encode(source_.map(), rest, generation, buffer);
      ASSERT_NE(progress.stop, EncodeStop::kPageOutOfRange);
      ASSERT_GT(progress.pages_consumed, 0u) << "a buffer of max_record_bytes must make progress";
      std::size_t applied = 0;
      ASSERT_EQ(decoder_->decode_all({buffer.data(), progress.bytes_written}, destination_.map(), &applied),
                DecodeError::kNone);
      rest = rest.subspan(progress.pages_consumed);
    }
  }

  // The same, RAW payloads left in the region (zero-copy): their places in the buffer are
  // filled from the references, as a NIC gathers a frame's segments, before decoding.
  // Returns the references made.
  std::size_t send_by_reference(const std::vector<std::uint64_t>& indices, std::uint32_t generation,
                                std::size_t buffer_bytes) {
    std::size_t made = 0;
    Bytes buffer(buffer_bytes);
    std::span<const std::uint64_t> rest(indices);
    while (!rest.empty()) {
      std::fill(buffer.begin(), buffer.end(), std::byte{0xa5});
      PageReferences references;
      const EncodeProgress progress = encoder_->encode(source_.map(), rest, generation, buffer, &references);
      EXPECT_GT(progress.pages_consumed, 0u);
      if (progress.pages_consumed == 0) return made;
      for (std::size_t r = 0; r < references.count; ++r) {
        const PageReference& ref = references.items[r];
        EXPECT_TRUE(source_.holds(ref.bytes, ref.length)) << "a reference outside one block of guest memory";
        EXPECT_LE(ref.offset + ref.length, progress.bytes_written);
        // (Later rounds may leave a delta that did not pay there, unsent.)
        if (generation == 1) {
          EXPECT_TRUE(std::all_of(buffer.begin() + static_cast<std::ptrdiff_t>(ref.offset),
                                buffer.begin() + static_cast<std::ptrdiff_t>(ref.offset + ref.length),
                                  [](std::byte b) { return b == std::byte{0xa5}; }))
              << "a referenced payload was copied";
        }
        std::memcpy(buffer.data() + ref.offset, ref.bytes, ref.length);
      }
      made += references.count;
      std::size_t applied = 0;
      EXPECT_EQ(decoder_->decode_all({buffer.data(), progress.bytes_written}, destination_.map(), &applied),
                DecodeError::kNone);
      rest = rest.subspan(progress.pages_consumed);
    }
    return made;
  }

  void send_all(std::uint32_t generation) {
    std::vector<std::uint64_t> all(pages());
    std::iota(all.begin(), all.end(), 0);
    send(all, generation);
  }

  bool identical() const {
    for (std::uint64_t p = 0; p < pages(); ++p) {
      if (!identical_page(p)) return false;
    }
    return true;
  }
  bool identical_page(std::uint64_t index) const {
    return std::memcmp(source_.map().page(index), destination_.map().page(index), page_size_) == 0;
  }
  const EncoderCounters& sent() const { return encoder_->counters(); }
  Encoder& encoder() { return *encoder_; }
  const DecoderCounters& received() const { return decoder_->counters(); }

 private:
  std::uint32_t page_size_;
  BlockMemory source_;
  BlockMemory destination_;
  std::optional<Encoder> encoder_;
  std::optional<Decoder> decoder_;
};

std::uint64_t pages_as(const EncoderCounters& c, Encoding e) {
  return c.pages[static_cast<std::size_t>(e)];
}

Policy only(bool zero, bool delta, bool deflate) {
  Policy p;
  p.zero = zero;
  p.delta = delta;
  p.deflate = deflate;
  p.duplicates = false;
  return p;
}

Policy with_duplicates(Policy p) {
  p.duplicates = true;
  return p;
}

struct PolicyCase {
  const char* name;
  Policy policy;
};

// Guest memory as one block, or as RAM blocks cut differently at each end (48 pages).
struct LayoutCase {
  const char* name;
  Layout source, destination;
};
const LayoutCase kOneBlock{"", {}, {}};
const LayoutCase kRamBlocks{"_ram_blocks", {5, 1, 19, 3, 20}, {2, 13, 13, 7, 13}};

class RoundTrip : public ::testing::TestWithParam<std::tuple<std::uint32_t, PolicyCase, LayoutCase>> {};

TEST_P(RoundTrip, TwoRoundsOfEveryPageKind) {
  const auto& [page_size, policy_case, layout] = GetParam();
  Migration m(page_size, 48, policy_case.policy, 1 << 20, layout.source, layout.destination);
  m.send_all(0);
  ASSERT_TRUE(m.identical());

  // Round 1: a few bytes change in some pages, whole pages in others, some become zero.
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> dirty;
  for (std::uint64_t p = 0; p < m.pages(); p += 2) {
    if (p % 6 == 0) test::dirty_runs(m.page(p), page_size, 3, 40, rng);
    if (p % 6 == 2) test::fill_page(m.page(p), page_size, PageKind::kRandom, rng);
    if (p % 6 == 4) test::fill_page(m.page(p), page_size, PageKind::kZero, rng);
    dirty.push_back(p);
  }
  m.send(dirty, 1);
  ASSERT_TRUE(m.identical());
  // Round 2: the same pages again; now they are in the delta cache.
  for (std::uint64_t p : dirty) test::dirty_runs(m.page(p), page_size, 2, 16, rng);
  m.send(dirty, 2);
  EXPECT_TRUE(m.identical());
}

INSTANTIATE_TEST_SUITE_P(
    PageSizesAndPolicies, RoundTrip,
    ::testing::Combine(::testing::Values(4096u, 8192u, 16384u, 32768u, 65536u),
                       ::testing::Values(PolicyCase{"default", Policy{}},
                                         PolicyCase{"raw_only", only(false, false, false)},
                                         PolicyCase{"zero_only", only(true, false, false)},
                                         PolicyCase{"delta_only", only(false, true, false)},
                                         PolicyCase{"deflate_only", only(false, false, true)}),
                       ::testing::Values(kOneBlock, kRamBlocks)),
    [](const auto& info) {
      return std::string(std::get<1>(info.param).name) + "_" + std::to_string(std::get<0>(info.param)) +
             std::get<2>(info.param).name;
    });

// Records are runs of pages that lie back to back in the sender's memory: none spans two of
// its blocks, however the batches and zero runs would otherwise fall.
TEST(Codec, NoRecordSpansTwoOfTheSendersBlocks) {
  for (const Policy& policy : {only(true, false, false), only(false, false, true), only(false, false, false)}) {
    Migration m(4096, 48, policy, 1 << 20, kRamBlocks.source, {});
    for (std::uint64_t p = 0; p < 48; ++p) std::memset(m.page(p), p < 24 ? 0 : 0x41, 4096);  // runs everywhere
    std::vector<std::uint64_t> all(48);
    std::iota(all.begin(), all.end(), 0);
    Bytes out(1 << 20);
    const EncodeProgress progress = m.encoder().encode(m.source(), all, 1, out);
    ASSERT_EQ(progress.stop, EncodeStop::kDone);
    std::size_t records = 0;
    for (std::span<const std::byte> rest(out.data(), progress.bytes_written); !rest.empty(); ++records) {
      const ParsedRecord parsed = parse_record(rest, 4096, 48);
      ASSERT_EQ(parsed.error, DecodeError::kNone);
      EXPECT_LE(parsed.view.page_count, m.source().run_from(parsed.view.first_page))
          << "record of pages " << parsed.view.first_page << "+" << parsed.view.page_count;
      rest = rest.subspan(parsed.view.record_bytes);
    }
    EXPECT_GE(records, kRamBlocks.source.size()) << "a run of 24 pages is cut at every block";
    EXPECT_LE(records, kRamBlocks.source.size() + 4);
  }
}

// Zero-copy over blocks: a reference points into one block, never across two.
TEST(Codec, ReferencesStayInsideOneBlock) {
  Migration m(4096, 48, only(true, false, false), 1 << 20, kRamBlocks.source, kRamBlocks.destination);
  std::vector<std::uint64_t> all(48);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_GT(m.send_by_reference(all, 1, 64 << 10), 0u);
  EXPECT_TRUE(m.identical());
}

TEST(Codec, ZeroPagesGoAsHeaderOnlyRuns) {
  Migration m(4096, 64, Policy{});
  for (std::uint64_t p = 0; p < 64; ++p) std::memset(m.page(p), 0, 4096);
  m.send_all(0);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kZero), 64u);
  EXPECT_EQ(m.sent().records[static_cast<std::size_t>(Encoding::kZero)], 1u);
  EXPECT_EQ(m.sent().output_bytes, kRecordHeaderBytes);
}

TEST(Codec, RedirtiedPagesGoAsDeltaAgainstWhatWasSent) {
  Migration m(4096, 16, only(true, true, true));
  for (std::uint64_t p = 0; p < 16; ++p) {
    auto page = test::make_page(4096, PageKind::kText, p);
    std::memcpy(m.page(p), page.data(), 4096);
  }
  m.send_all(0);  // bulk round: not cached yet
  m.send_all(1);  // second send: now cached
  EXPECT_EQ(pages_as(m.sent(), Encoding::kDelta), 0u);
  std::mt19937_64 rng(11);
  for (std::uint64_t p = 0; p < 16; ++p) test::dirty_runs(m.page(p), 4096, 3, 20, rng);
  m.send_all(2);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kDelta), 16u);
  EXPECT_EQ(m.received().pages[static_cast<std::size_t>(Encoding::kDelta)], 16u);
}

TEST(Codec, PagesGoWholeOnceTheReceiverHoldsNothingToBuildOn) {
  // Postcopy: the destination's guest writes the pages it holds and the others were
  // dropped, so neither a DELTA against what was sent nor a COPY of another page may follow.
  Migration m(4096, 32, with_duplicates(only(true, true, true)));
  for (std::uint64_t p = 0; p < 16; ++p) {
    auto page = test::make_page(4096, PageKind::kText, p);
    std::memcpy(m.page(p), page.data(), 4096);
  }
  for (std::uint64_t p = 16; p < 32; ++p) std::memcpy(m.page(p), m.page(p - 16), 4096);
  m.send_all(0);
  m.send_all(1);  // cached now: another round would send DELTAs
  std::mt19937_64 rng(12);
  for (std::uint64_t p = 0; p < 16; ++p) test::dirty_runs(m.page(p), 4096, 3, 20, rng);
  const EncoderCounters before = m.sent();
  m.encoder().stop_building_on_receiver();
  EXPECT_FALSE(m.encoder().builds_on_receiver());
  m.send_all(2);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kDelta), pages_as(before, Encoding::kDelta));
  EXPECT_EQ(pages_as(m.sent(), Encoding::kCopy), pages_as(before, Encoding::kCopy));
  EXPECT_EQ(pages_as(m.sent(), Encoding::kDeflate) + pages_as(m.sent(), Encoding::kRaw),
            pages_as(before, Encoding::kDeflate) + pages_as(before, Encoding::kRaw) + 32)
      << "all 32 pages whole";
}

// Postcopy decodes each record into a buffer of its own, to be placed elsewhere: every
// page kind, deflated and raw, arrives there byte for byte, and what builds on held pages
// (DELTA) or does not fit is refused with its reason.
TEST(Codec, RecordsDecodeIntoABufferOfTheirOwn) {
  for (bool deflate : {false, true}) {
    Migration m(4096, 48, only(true, false, deflate));
    std::vector<std::uint64_t> all(48);
    std::iota(all.begin(), all.end(), 0);
    Bytes records(1 << 20);
    const EncodeProgress progress = m.encoder().encode(m.source(), all, 1, records);
    ASSERT_EQ(progress.pages_consumed, 48u);
    auto decoder = Decoder::create(4096, 48);
    ASSERT_TRUE(decoder.ok());
    std::span<const std::byte> rest(records.data(), progress.bytes_written);
    std::uint64_t pages_seen = 0;
    while (!rest.empty()) {
      const ParsedRecord parsed = decoder->parse(rest);
      ASSERT_EQ(parsed.error, DecodeError::kNone);
      Bytes out(std::size_t{parsed.view.page_count} * 4096, std::byte{0x5a});
      ASSERT_EQ(decoder->apply_into(parsed.view, out), DecodeError::kNone);
      for (std::uint32_t k = 0; k < parsed.view.page_count; ++k) {
        EXPECT_EQ(std::memcmp(out.data() + k * 4096, m.page(parsed.view.first_page + k), 4096), 0)
            << "page " << parsed.view.first_page + k << (deflate ? " deflated" : " raw");
      }
      if (parsed.view.page_count > 1) {
        Bytes small(4096);
        EXPECT_EQ(decoder->apply_into(parsed.view, small), DecodeError::kBadPageCount);
      }
      pages_seen += parsed.view.page_count;
      rest = rest.subspan(parsed.view.record_bytes);
    }
    EXPECT_EQ(pages_seen, 48u);
  }
  Migration m(4096, 4, only(true, true, true));
  m.send_all(0);
  m.send_all(1);
  std::mt19937_64 rng(13);
  test::dirty_runs(m.page(2), 4096, 3, 20, rng);
  Bytes records(1 << 16);
  const std::vector<std::uint64_t> page2{2};
  const EncodeProgress progress = m.encoder().encode(m.source(), page2, 2, records);
  auto decoder = Decoder::create(4096, 4);
  const ParsedRecord parsed = decoder->parse({records.data(), progress.bytes_written});
  ASSERT_EQ(parsed.view.encoding, Encoding::kDelta);
  Bytes out(4096);
  EXPECT_EQ(decoder->apply_into(parsed.view, out), DecodeError::kUnknownEncoding);
}

TEST(Codec, DeltaThatDoesNotPayFallsBackAndStaysExact) {
  Policy policy;
  policy.delta_max_percent = 10;
  Migration m(4096, 8, policy);
  m.send_all(0);
  m.send_all(1);
  std::mt19937_64 rng(12);
  for (std::uint64_t p = 0; p < 8; ++p) test::fill_page(m.page(p), 4096, PageKind::kRandom, rng);
  m.send_all(2);
  EXPECT_TRUE(m.identical());
  EXPECT_GT(m.sent().delta_overflows, 0u);
  // The cache was refreshed with what the fallback sent: a small change now deltas.
  for (std::uint64_t p = 0; p < 8; ++p) test::dirty_runs(m.page(p), 4096, 1, 8, rng);
  const auto deltas_before = pages_as(m.sent(), Encoding::kDelta);
  m.send_all(3);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kDelta) - deltas_before, 8u);
}

TEST(Codec, DeflateBatchesContiguousPages) {
  Policy policy = only(true, false, true);
  policy.deflate_batch_pages = 16;
  Migration m(4096, 64, policy);
  for (std::uint64_t p = 0; p < 64; ++p) {
    auto page = test::make_page(4096, PageKind::kText, p);
    std::memcpy(m.page(p), page.data(), 4096);
  }
  m.send_all(0);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(m.sent().records[static_cast<std::size_t>(Encoding::kDeflate)], 4u);
  EXPECT_LT(m.sent().output_bytes, 64u * 4096 / 3);
}

TEST(Codec, IncompressiblePagesGoRaw) {
  Migration m(4096, 16, only(true, false, true));
  std::mt19937_64 rng(13);
  for (std::uint64_t p = 0; p < 16; ++p) test::fill_page(m.page(p), 4096, PageKind::kRandom, rng);
  m.send_all(0);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kRaw), 16u);
  EXPECT_GT(m.sent().deflate_overflows, 0u);
}

// RAW batches cut for the transport's frames: as many pages as a frame holds, at least one,
// so a receiver can apply a record whose few frames are in while a hole before them is
// repaired; batches to be deflated keep their size; without a frame size, the batch's.
TEST(Codec, RawBatchesAreCutForTheFramesTheyGoIn) {
  auto raw_records_for = [](std::size_t frame_payload, bool deflate) {
    Migration m(4096, 16, only(false, false, deflate));
    std::mt19937_64 rng(21);
    for (std::uint64_t p = 0; p < 16; ++p) test::fill_page(m.page(p), 4096, PageKind::kRandom, rng);
    m.encoder().cut_raw_for(frame_payload);
    m.send_all(0);
    EXPECT_TRUE(m.identical());
    EXPECT_EQ(pages_as(m.sent(), Encoding::kRaw), 16u);
    return m.sent().records[static_cast<std::size_t>(Encoding::kRaw)];
  };
  EXPECT_EQ(raw_records_for(1432, false), 16u) << "MTU 1500: a page a record";
  EXPECT_EQ(raw_records_for(8932, false), 8u) << "MTU 9000: two pages a record, as a frame holds";
  EXPECT_EQ(raw_records_for(0, false), 1u) << "no frame size: one batch";
  EXPECT_EQ(raw_records_for(1432, true), 1u) << "a batch meant for deflate, incompressible, stays one";
}

TEST(Codec, ScatteredPagesAndASmallBufferStillArriveExactly) {
  Migration m(4096, 200, Policy{});
  std::vector<std::uint64_t> some;
  for (std::uint64_t p = 0; p < 200; p += 1 + p % 3) some.push_back(p);
  m.send(some, 0, m.encoder().max_record_bytes());
  m.send(some, 1, m.encoder().max_record_bytes());
  std::vector<std::uint64_t> rest;
  for (std::uint64_t p = 0; p < 200; ++p) {
    if (!std::binary_search(some.begin(), some.end(), p)) rest.push_back(p);
  }
  m.send(rest, 1, m.encoder().max_record_bytes() + 100);
  EXPECT_TRUE(m.identical());
}

// Zero-copy: RAW payloads stay in the region and are described instead; zero pages and
// deltas are written as always, CRCs cover the referenced bytes, and the delta cache holds
// what was referenced, so the next round's deltas apply exactly.
TEST(Codec, RawPagesByReferenceAreDescribedNotCopied) {
  Policy policy = only(true, true, false);
  policy.crc = true;
  Migration m(4096, 64, policy);
  std::vector<std::uint64_t> all(64);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_GT(m.send_by_reference(all, 1, 9000), 0u);
  EXPECT_TRUE(m.identical());
  m.send_by_reference(all, 2, 9000);  // sent twice: now in the delta cache, as referenced
  std::mt19937_64 rng(5);
  for (std::uint64_t p = 0; p < 64; p += 3) test::fill_page(m.page(p), 4096, PageKind::kSparse, rng);
  for (std::uint64_t p = 1; p < 64; p += 7) m.page(p)[100] ^= std::byte{1};
  m.send_by_reference(all, 3, 9000);
  EXPECT_TRUE(m.identical());
  EXPECT_GT(pages_as(m.sent(), Encoding::kDelta), 0u);
  EXPECT_EQ(m.received().errors[static_cast<std::size_t>(DecodeError::kCrcMismatch)], 0u);
  EXPECT_GT(m.received().pages[static_cast<std::size_t>(Encoding::kRaw)], 0u);
}

TEST(Codec, ReferencesBeyondTheLimitEndTheOutput) {
  Migration m(4096, 64, only(false, false, false));
  std::vector<std::uint64_t> every_other;
  for (std::uint64_t p = 0; p < 64; p += 2) every_other.push_back(p);  // no batches: one record per page
  Bytes large(1 << 20);
  PageReferences references;
  const EncodeProgress progress = m.encoder().encode(m.source(), every_other, 1, large, &references);
  EXPECT_EQ(references.count, PageReferences::kMax);
  EXPECT_EQ(progress.pages_consumed, PageReferences::kMax);
  EXPECT_EQ(progress.stop, EncodeStop::kOutputFull);
}

TEST(Codec, FullOutputStopsCleanlyAndResumes) {
  Migration m(4096, 32, only(false, false, false));
  Bytes small(kRecordHeaderBytes + 4096 - 1);
  std::vector<std::uint64_t> all(32);
  std::iota(all.begin(), all.end(), 0);
  auto progress = m.encoder().encode(m.source(), all, 0, small);
  EXPECT_EQ(progress.stop, EncodeStop::kOutputFull);
  EXPECT_EQ(progress.pages_consumed, 0u);
  EXPECT_EQ(progress.bytes_written, 0u);
}

TEST(Codec, PageOutsideTheRegionIsACallerError) {
  Migration m(4096, 8, Policy{});
  Bytes out(1 << 20);
  const std::vector<std::uint64_t> pages = {1, 2, 8};
  auto progress = m.encoder().encode(m.source(), pages, 0, out);
  EXPECT_EQ(progress.stop, EncodeStop::kPageOutOfRange);
  EXPECT_EQ(progress.pages_consumed, 2u);
}

TEST(Codec, CrcCatchesACorruptedPayload) {
  Migration source(4096, 4, only(false, false, false));
  std::vector<std::uint64_t> all = {0, 1, 2, 3};
  Bytes out(1 << 20);
  auto& encoder = source.encoder();
  auto progress = encoder.encode(source.source(), all, 0, out);
  out[kRecordHeaderBytes + 100] ^= std::byte{0x01};
  auto decoder = Decoder::create(4096, 4);
  Bytes destination(4 * 4096);
  std::size_t applied = 0;
  EXPECT_EQ(decoder->decode_all({out.data(), progress.bytes_written}, PageMap::contiguous(destination.data(), 4, 4096),
                                &applied),
            DecodeError::kCrcMismatch);
  EXPECT_EQ(decoder->counters().errors[static_cast<std::size_t>(DecodeError::kCrcMismatch)], 1u);
}

// Two pages whose fingerprints agree (the samples at 0, 1/4, 1/2 and the last 64 bytes)
// while their bytes differ in between.
void make_sample_twins(std::byte* a, std::byte* b, std::uint32_t page_size) {
  std::mt19937_64 rng(21);
  test::fill_page(a, page_size, PageKind::kRandom, rng);
  std::memcpy(b, a, page_size);
  b[page_size / 8] ^= std::byte{0xff};
  ASSERT_EQ(DuplicateIndex::fingerprint(a, page_size), DuplicateIndex::fingerprint(b, page_size));
}

TEST(Duplicates, PagesEqualToOnesAlreadySentGoAsCopies) {
  Migration m(4096, 32, with_duplicates(only(true, false, false)));
  for (std::uint64_t p = 0; p < 8; ++p) m.page(p)[0] = std::byte(p + 1);  // no zero page among them
  for (std::uint64_t p = 8; p < 32; ++p) std::memcpy(m.page(p), m.page(p % 8), 4096);
  std::vector<std::uint64_t> all(32);
  std::iota(all.begin(), all.end(), 0);
  m.encoder().begin_round(all);
  m.send_all(1);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kCopy), 24u);
  EXPECT_EQ(m.received().pages[static_cast<std::size_t>(Encoding::kCopy)], 24u);
  EXPECT_EQ(m.sent().output_bytes, 8 * (kRecordHeaderBytes + 4096) - 7 * kRecordHeaderBytes +
                                       24 * (kRecordHeaderBytes + kCopyPayloadBytes))
      << "one RAW batch of the 8 originals, a 40-byte COPY for each duplicate";
  ASSERT_EQ(m.encoder().copies().size(), 24u);
  for (const PageCopy& copy : m.encoder().copies()) EXPECT_EQ(copy.source, copy.page % 8);
}

TEST(Duplicates, AFingerprintCollisionIsComparedAndSentInFull) {
  Migration m(4096, 2, with_duplicates(only(true, false, false)));
  make_sample_twins(m.page(0), m.page(1), 4096);
  m.encoder().begin_round(std::vector<std::uint64_t>{0, 1});
  m.send_all(1);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kCopy), 0u);
  EXPECT_EQ(m.encoder().duplicates().candidates, 1u);
  EXPECT_EQ(m.encoder().duplicates().differed, 1u);
}

TEST(Duplicates, APageStillToBeSentAgainThisRoundIsNeverNamed) {
  // Round 1: page 3 holds X. Then page 3 becomes Y and page 1 too, where X and Y share a
  // fingerprint. Round 2 encodes page 1 before page 3: a COPY "1 = 3 as sent in round 1"
  // would give page 1 the receiver's X.
  Migration m(4096, 4, with_duplicates(only(true, false, false)));
  Bytes y(4096);
  make_sample_twins(m.page(3), y.data(), 4096);
  std::vector<std::uint64_t> first{3};
  m.encoder().begin_round(first);
  m.send(first, 1);
  std::memcpy(m.page(3), y.data(), 4096);
  std::memcpy(m.page(1), y.data(), 4096);
  std::vector<std::uint64_t> second{1, 3};
  m.encoder().begin_round(second);
  m.send(second, 2);
  EXPECT_EQ(m.encoder().duplicates().pending, 1u) << "page 1 did not name page 3";
  // Page 1 went in full; page 3, sent after it, may and does name page 1 as just sent.
  ASSERT_EQ(m.encoder().copies().size(), 1u);
  EXPECT_EQ(m.encoder().copies()[0].page, 3u);
  EXPECT_EQ(m.encoder().copies()[0].source, 1u);
  // Pages 0 and 2 were never sent; the two that were hold Y.
  EXPECT_TRUE(m.identical_page(1) && m.identical_page(3));
}

TEST(Duplicates, APageSentAgainEarlierInTheRoundMayBeNamed) {
  Migration m(4096, 6, with_duplicates(only(true, false, false)));
  std::vector<std::uint64_t> first{3};
  m.encoder().begin_round(first);
  m.send(first, 1);
  std::mt19937_64 rng(5);
  test::fill_page(m.page(3), 4096, PageKind::kText, rng);
  std::memcpy(m.page(5), m.page(3), 4096);
  std::vector<std::uint64_t> second{3, 5};
  m.encoder().begin_round(second);
  m.send(second, 2);
  ASSERT_EQ(m.encoder().copies().size(), 1u);
  EXPECT_EQ(m.encoder().copies()[0].page, 5u);
  EXPECT_EQ(m.encoder().copies()[0].source, 3u);
  EXPECT_TRUE(m.identical_page(3) && m.identical_page(5));
}

TEST(Duplicates, WhereFewPagesAreDuplicatesOnlyOneInSixteenIsLookedAt) {
  auto index = DuplicateIndex::create(1024);
  ASSERT_TRUE(index.ok());
  for (std::uint32_t k = 0; k < DuplicateIndex::kWindowLooks; ++k) {
    ASSERT_TRUE(index->should_look());
    index->looked(k < 5);  // 5 of 1024: under 1 %
  }
  EXPECT_FALSE(index->dense());
  int looks = 0;
  for (int page = 0; page < 1600; ++page) looks += index->should_look() ? 1 : 0;
  EXPECT_EQ(looks, 1600 / static_cast<int>(DuplicateIndex::kSparseStride));
  // Sparse, a duplicate finds its twin in the table one time in 16 (only one page in 16 went
  // in): a window without a copy stays sparse; one copy in 1024 looks stands for 1.6 % of the
  // pages, and turns it back to every page.
  for (std::uint32_t k = 0; k < DuplicateIndex::kWindowLooks; ++k) index->looked(false);
  EXPECT_FALSE(index->dense());
  for (std::uint32_t k = 0; k < DuplicateIndex::kWindowLooks; ++k) index->looked(k == 0);
  EXPECT_TRUE(index->dense());
  EXPECT_TRUE(index->should_look());
}

TEST(Duplicates, OffByPolicyNothingIsFingerprinted) {
  Policy policy = only(true, false, false);
  policy.duplicates = false;
  Migration m(4096, 8, policy);
  for (std::uint64_t p = 1; p < 8; ++p) std::memcpy(m.page(p), m.page(0), 4096);
  m.send_all(1);
  EXPECT_TRUE(m.identical());
  EXPECT_EQ(pages_as(m.sent(), Encoding::kCopy), 0u);
  EXPECT_EQ(m.encoder().duplicates().candidates, 0u);
}

TEST(Codec, ConfigErrorsNameWhatWasExpected) {
  EncoderConfig config;
  config.region_pages = 8;
  config.page_size = 3000;
  auto bad_size = Encoder::create(config);
  ASSERT_FALSE(bad_size.ok());
  EXPECT_NE(bad_size.error().message.find("power of two"), std::string::npos);
  config.page_size = 4096;
  config.policy.deflate_level = 9;
  auto bad_level = Encoder::create(config);
  ASSERT_FALSE(bad_level.ok());
  EXPECT_NE(bad_level.error().message.find("0..3"), std::string::npos);
}

}  // namespace
}  // namespace pagewire::pagecodec
