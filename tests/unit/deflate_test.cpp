// The ISA-L wrapper: every level round-trips, overflow is reported, and inflate insists on
// exactly the expected size.
#include "pagewire/pagecodec/deflate.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "pages.hpp"

namespace pagewire::pagecodec {
namespace {

using test::Bytes;

TEST(Deflate, EveryLevelRoundTrips) {
  const Bytes input = test::make_page(65536, test::PageKind::kText, 1);
  DeflateDecompressor inflater;
  for (int level = kMinDeflateLevel; level <= kMaxDeflateLevel; ++level) {
    auto deflater = DeflateCompressor::create(level);
    ASSERT_TRUE(deflater.ok());
    Bytes compressed(input.size());
    const std::size_t n = deflater->compress(input, compressed);
    ASSERT_GT(n, 0u) << "level " << level;
    EXPECT_LT(n, input.size() / 2) << "text compresses";
    Bytes output(input.size());
    EXPECT_TRUE(inflater.decompress_exact({compressed.data(), n}, output));
    EXPECT_EQ(output, input) << "level " << level;
  }
}

TEST(Deflate, OverflowIsZeroNotAnError) {
  const Bytes input = test::make_page(4096, test::PageKind::kRandom, 2);
  auto deflater = DeflateCompressor::create(1);
  Bytes compressed(4096 * 9 / 10);
  EXPECT_EQ(deflater->compress(input, compressed), 0u);
}

TEST(Deflate, RejectsUnknownLevel) {
  auto deflater = DeflateCompressor::create(4);
  ASSERT_FALSE(deflater.ok());
  EXPECT_NE(deflater.error().message.find("expected 0..3"), std::string::npos);
}

// `input` deflated at level 1, cut to its length.
Bytes deflated(const Bytes& input) {
  Bytes compressed(input.size());
  compressed.resize(DeflateCompressor::create(1)->compress(input, compressed));
  EXPECT_GT(compressed.size(), 0u);
  return compressed;
}

TEST(Deflate, InflateRefusesAStreamOfTheWrongSize) {
  const Bytes compressed = deflated(test::make_page(8192, test::PageKind::kText, 3));
  const std::size_t n = compressed.size();
  DeflateDecompressor inflater;
  Bytes too_small(4096), too_large(12288);
  EXPECT_FALSE(inflater.decompress_exact(compressed, too_small));
  EXPECT_FALSE(inflater.decompress_exact(compressed, too_large));
  EXPECT_FALSE(inflater.decompress_exact({compressed.data(), n / 2}, too_large)) << "truncated";
}

// Output in pieces, as pages that lie in different memory blocks: back-references reach
// across pieces, and the stream must end exactly with the last piece.
TEST(Deflate, InflatesIntoPiecesOfAnySize) {
  Bytes input = test::make_page(65536, test::PageKind::kText, 4);
  const Bytes binary = test::make_page(16384, test::PageKind::kBinary, 5);
  std::copy(binary.begin(), binary.end(), input.begin() + 20000);
  const Bytes compressed = deflated(input);
  DeflateDecompressor inflater;
  for (const std::vector<std::size_t>& cuts : {std::vector<std::size_t>{4096, 61440}, {1, 4095, 32768, 28672},
                                               {12288, 12288, 12288, 12288, 12288, 4096}}) {
    Bytes output(input.size());
    inflater.start(compressed);
    std::size_t at = 0;
    for (std::size_t piece : cuts) {
      EXPECT_TRUE(inflater.inflate_into({output.data() + at, piece})) << "piece at " << at;
      at += piece;
    }
    EXPECT_TRUE(inflater.finished());
    EXPECT_EQ(output, input);
  }
}

TEST(Deflate, PiecesRefuseAStreamOfTheWrongSize) {
  const Bytes compressed = deflated(test::make_page(8192, test::PageKind::kText, 6));
  const std::size_t n = compressed.size();
  DeflateDecompressor inflater;
  Bytes output(12288, std::byte{0x77});
  // Too little output asked for: the stream goes on past the last piece.
  inflater.start(compressed);
  EXPECT_TRUE(inflater.inflate_into({output.data(), 4096}));
  EXPECT_FALSE(inflater.finished());
  // Too much: the stream ends inside the second piece; nothing is written past the pieces.
  inflater.start(compressed);
  EXPECT_TRUE(inflater.inflate_into({output.data(), 4096}));
  EXPECT_FALSE(inflater.inflate_into({output.data() + 4096, 6144}));
  EXPECT_EQ(output[10240], std::byte{0x77});
  // Truncated input.
  inflater.start({compressed.data(), n / 2});
  EXPECT_FALSE(inflater.inflate_into({output.data(), 4096}) && inflater.inflate_into({output.data() + 4096, 4096}) &&
               inflater.finished());
}

}  // namespace
}  // namespace pagewire::pagecodec
