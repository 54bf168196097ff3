// The ISA-L wrapper: every level round-trips, overflow is reported, and inflate insists on
// exactly the expected size.
#include "pagewire/pagecodec/deflate.hpp"

#include <gtest/gtest.h>

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

TEST(Deflate, InflateRefusesAStreamOfTheWrongSize) {
  const Bytes input = test::make_page(8192, test::PageKind::kText, 3);
  auto deflater = DeflateCompressor::create(1);
  Bytes compressed(input.size());
  const std::size_t n = deflater->compress(input, compressed);
  DeflateDecompressor inflater;
  Bytes too_small(4096), too_large(12288);
  EXPECT_FALSE(inflater.decompress_exact({compressed.data(), n}, too_small));
  EXPECT_FALSE(inflater.decompress_exact({compressed.data(), n}, too_large));
  EXPECT_FALSE(inflater.decompress_exact({compressed.data(), n / 2}, too_large)) << "truncated";
}

}  // namespace
}  // namespace pagewire::pagecodec
