// The delta encoder: QEMU's xbzrle edge cases, the vector fast path against its scalar twin,
// the cache-equals-what-was-sent invariant, and a decoder that distrusts its input.
#include "pagewire/pagecodec/xbzrle.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "pages.hpp"

namespace pagewire::pagecodec::xbzrle {
namespace {

using test::Bytes;
using test::PageKind;

struct Variant {
  const char* name;
  EncodeFn encode;
};

class XbzrleTest : public ::testing::TestWithParam<Variant> {
 protected:
  // Encodes `current` against a copy of `base`, checks the cache became `current`, decodes
  // onto another copy of `base` and checks it became `current`. Returns the payload size.
  std::size_t round_trip(const Bytes& base, const Bytes& current) {
    Bytes cache = base;
    Bytes out(2 * base.size() + 64);
    const std::size_t n = GetParam().encode(current.data(), cache.data(), base.size(), out);
    EXPECT_NE(n, kOverflow);
    if (n == kOverflow) return n;
    EXPECT_EQ(cache, current) << "the cache must hold exactly what was encoded";
    const std::span<const std::byte> payload(out.data(), n);
    EXPECT_TRUE(validate(payload, base.size()));
    Bytes page = base;
    apply_validated(payload, page.data());
    EXPECT_EQ(page, current);
    return n;
  }
};

TEST_P(XbzrleTest, UnchangedPageEncodesToNothing) {
  const Bytes page = test::make_page(4096, PageKind::kBinary, 1);
  EXPECT_EQ(round_trip(page, page), 0u);
}

TEST_P(XbzrleTest, FirstByteChanged) {
  const Bytes base = test::make_page(4096, PageKind::kText, 2);
  Bytes current = base;
  current[0] ^= std::byte{1};
  EXPECT_EQ(round_trip(base, current), 3u);  // run 0, run 1, one byte
}

TEST_P(XbzrleTest, LastByteChanged) {
  const Bytes base = test::make_page(4096, PageKind::kText, 3);
  Bytes current = base;
  current[4095] ^= std::byte{1};
  EXPECT_EQ(round_trip(base, current), 4u);  // run 4095 takes two ULEB bytes
}

TEST_P(XbzrleTest, AllBytesChanged) {
  const Bytes base = test::make_page(4096, PageKind::kAlternating, 4);
  Bytes current = base;
  for (auto& b : current) b ^= std::byte{0xff};
  EXPECT_EQ(round_trip(base, current), 1u + 2u + 4096u);
}

TEST_P(XbzrleTest, AlternatingBytesIsTheWorstCase) {
  const Bytes base(4096, std::byte{0});
  Bytes current = base;
  for (std::size_t i = 1; i < current.size(); i += 2) current[i] = std::byte{1};
  // Expect: 2048 triples of (1, 1, byte) = 1.5 x the page; larger than the page.
  EXPECT_EQ(round_trip(base, current), 3u * 2048u);
}

TEST_P(XbzrleTest, RunsCrossing64ByteBoundaries) {
  const Bytes base = test::make_page(4096, PageKind::kBinary, 5);
  for (std::size_t start : {60u, 63u, 64u, 127u, 128u, 4030u}) {
    for (std::size_t length : {1u, 2u, 5u, 64u, 65u, 66u}) {
      if (start + length > base.size()) continue;
      Bytes current = base;
      for (std::size_t k = 0; k < length; ++k) current[start + k] ^= std::byte{0x5a};
      SCOPED_TRACE(testing::Message() << "start " << start << " length " << length);
      round_trip(base, current);
    }
  }
}

TEST_P(XbzrleTest, EveryPageSize) {
  for (std::size_t size = 4096; size <= 65536; size *= 2) {
    const Bytes base = test::make_page(size, PageKind::kText, size);
    Bytes current = base;
    std::mt19937_64 rng(size);
    test::dirty_runs(current.data(), size, 7, 33, rng);
    SCOPED_TRACE(testing::Message() << "page size " << size);
    round_trip(base, current);
  }
}

TEST_P(XbzrleTest, OverflowWhenTheDeltaDoesNotFit) {
  const Bytes base(4096, std::byte{0});
  Bytes current = base;
  for (std::size_t i = 0; i < current.size(); i += 2) current[i] = std::byte{1};
  Bytes cache = base;
  Bytes out(2048);
  EXPECT_EQ(GetParam().encode(current.data(), cache.data(), 4096, out), kOverflow);
}

INSTANTIATE_TEST_SUITE_P(Encoders, XbzrleTest,
                         ::testing::Values(Variant{"scalar", &encode_scalar},
                                           Variant{"best", best_encoder()}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(XbzrleTwin, FastPathMatchesScalarOnRandomPages) {
  const std::uint64_t seed = test::test_seed();
  RecordProperty("seed", std::to_string(seed));
  std::cout << "seed " << seed << " (set PAGEWIRE_TEST_SEED to replay); fast path "
            << best_encoder_name() << "\n";
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 10000; ++trial) {
    const std::size_t size = std::size_t{4096} << (rng() % 5);
    Bytes base(size);
    test::fill_page(base.data(), size, static_cast<PageKind>(rng() % 6), rng);
    Bytes current = base;
    test::dirty_runs(current.data(), size, static_cast<int>(rng() % 40),
                     1 + rng() % 100, rng);
    const std::size_t room = rng() % 4 == 0 ? rng() % (size / 2) : 2 * size;
    Bytes cache_a = base, cache_b = base, out_a(room), out_b(room);
    const std::size_t a = encode_scalar(current.data(), cache_a.data(), size, out_a);
    const std::size_t b = best_encoder()(current.data(), cache_b.data(), size, out_b);
    ASSERT_EQ(a, b) << "trial " << trial << " seed " << seed;
    if (a != kOverflow) {
      ASSERT_TRUE(std::equal(out_a.begin(), out_a.begin() + static_cast<std::ptrdiff_t>(a),
                             out_b.begin()))
          << "trial " << trial;
      ASSERT_EQ(cache_b, current) << "trial " << trial;
    }
  }
}

// ---- The decoder distrusts its input -------------------------------------------------

Bytes bytes_of(std::initializer_list<int> values) {
  Bytes out(values.size());
  std::size_t i = 0;
  for (int v : values) out[i++] = std::byte(v);
  return out;
}

TEST(XbzrleDecode, EmptyPayloadMeansUnchanged) { EXPECT_TRUE(validate({}, 4096)); }

TEST(XbzrleDecode, RefusesTruncatedLength) {
  EXPECT_FALSE(validate(bytes_of({0x80}), 4096));        // continuation with nothing after
  EXPECT_FALSE(validate(bytes_of({0x05}), 4096));        // unchanged run with no changed run
}

TEST(XbzrleDecode, RefusesOverlongAndNonCanonicalUleb) {
  EXPECT_FALSE(validate(bytes_of({0x80, 0x80, 0x80, 0x01, 0x01, 0xaa}), 65536));
  EXPECT_FALSE(validate(bytes_of({0x81, 0x00, 0x01, 0xaa}), 4096));  // 1 written as 2 bytes
}

TEST(XbzrleDecode, RefusesEmptyChangedRun) {
  EXPECT_FALSE(validate(bytes_of({0x01, 0x00}), 4096));
}

TEST(XbzrleDecode, RefusesRunsPastThePageEnd) {
  // unchanged 4095, changed 2: one byte past the end.
  EXPECT_FALSE(validate(bytes_of({0xff, 0x1f, 0x02, 0xaa, 0xbb}), 4096));
  // unchanged 4096 exactly, then a changed byte: past the end.
  EXPECT_FALSE(validate(bytes_of({0x80, 0x20, 0x01, 0xaa}), 4096));
  // unchanged 4095, changed 1: the last byte. Fine.
  EXPECT_TRUE(validate(bytes_of({0xff, 0x1f, 0x01, 0xaa}), 4096));
}

TEST(XbzrleDecode, RefusesChangedBytesMissingFromPayload) {
  EXPECT_FALSE(validate(bytes_of({0x00, 0x04, 0xaa, 0xbb}), 4096));
}

TEST(XbzrleDecode, RandomGarbageNeverWritesOutsideThePage) {
  std::mt19937_64 rng(test::test_seed());
  constexpr std::size_t kGuard = 64;
  for (int trial = 0; trial < 20000; ++trial) {
    Bytes payload(rng() % 64);
    for (auto& b : payload) b = std::byte(rng() % 4 == 0 ? 0x80 | rng() : rng() % 16);
    if (!validate(payload, 4096)) continue;
    Bytes page(kGuard + 4096 + kGuard, std::byte{0xee});
    apply_validated(payload, page.data() + kGuard);
    for (std::size_t k = 0; k < kGuard; ++k) {
      ASSERT_EQ(page[k], std::byte{0xee});
      ASSERT_EQ(page[kGuard + 4096 + k], std::byte{0xee});
    }
  }
}

}  // namespace
}  // namespace pagewire::pagecodec::xbzrle
