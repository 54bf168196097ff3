// Hostile records: every length and index in a header is checked before a payload byte is
// used, and a refused record leaves the destination untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "pages.hpp"
#include "pagewire/pagecodec/decoder.hpp"

namespace pagewire::pagecodec {
namespace {

using test::Bytes;

constexpr std::uint32_t kPage = 4096;
constexpr std::uint64_t kRegionPages = 8;

Bytes record(Encoding encoding, std::uint16_t pages, std::uint64_t first, Bytes payload,
             std::uint8_t flags = 0, std::uint32_t declared_payload = UINT32_MAX) {
  RecordHeader header{};
  header.encoding = static_cast<std::uint8_t>(encoding);
  header.flags = flags;
  header.page_count.set(pages);
  header.payload_bytes.set(declared_payload == UINT32_MAX ? static_cast<std::uint32_t>(payload.size())
                                                           : declared_payload);
  header.first_page.set(first);
  Bytes out(sizeof header + payload.size());
  std::memcpy(out.data(), &header, sizeof header);
  if (!payload.empty()) std::memcpy(out.data() + sizeof header, payload.data(), payload.size());
  return out;
}

Bytes concat(const Bytes& a, const Bytes& b) {
  Bytes out(a.size() + b.size());
  std::memcpy(out.data(), a.data(), a.size());
  std::memcpy(out.data() + a.size(), b.data(), b.size());
  return out;
}

DecodeError decode(const Bytes& bytes, Bytes* region) {
  auto decoder = Decoder::create(kPage, kRegionPages);
  std::size_t applied = 0;
  const DecodeError error = decoder->decode_all(bytes, PageMap::contiguous(region->data(), kRegionPages, kPage), &applied);
  if (error != DecodeError::kNone) {
    EXPECT_EQ(decoder->counters().errors[static_cast<std::size_t>(error)], 1u)
        << "every refusal is counted";
  }
  return error;
}

class HostileRecord : public ::testing::Test {
 protected:
  Bytes region_ = Bytes(kPage * kRegionPages, std::byte{0x77});
  void expect_refused(const Bytes& bytes, DecodeError expected) {
    EXPECT_EQ(decode(bytes, &region_), expected) << to_string(expected);
    EXPECT_EQ(region_, Bytes(kPage * kRegionPages, std::byte{0x77})) << "nothing was written";
  }
};

TEST_F(HostileRecord, ShorterThanAHeader) {
  Bytes bytes = record(Encoding::kZero, 1, 0, {});
  bytes.resize(kRecordHeaderBytes - 1);
  expect_refused(bytes, DecodeError::kTruncated);
}

TEST_F(HostileRecord, PayloadLengthPastTheBuffer) {
  expect_refused(record(Encoding::kRaw, 1, 0, Bytes(100), 0, kPage), DecodeError::kTruncated);
}

TEST_F(HostileRecord, UnknownEncoding) {
  Bytes bytes = record(Encoding::kZero, 1, 0, {});
  bytes[0] = std::byte{9};
  expect_refused(bytes, DecodeError::kUnknownEncoding);
  bytes[0] = std::byte{0};
  expect_refused(bytes, DecodeError::kUnknownEncoding);
}

TEST_F(HostileRecord, UnknownFlagOrReservedBits) {
  expect_refused(record(Encoding::kZero, 1, 0, {}, 0x80), DecodeError::kUnknownFlags);
  Bytes bytes = record(Encoding::kZero, 1, 0, {});
  bytes[28] = std::byte{1};
  expect_refused(bytes, DecodeError::kUnknownFlags);
}

TEST_F(HostileRecord, ZeroPagesOrAMultiPageDelta) {
  expect_refused(record(Encoding::kZero, 0, 0, {}), DecodeError::kBadPageCount);
  expect_refused(record(Encoding::kDelta, 2, 0, {}), DecodeError::kBadPageCount);
}

TEST_F(HostileRecord, PageIndexOutsideTheRegion) {
  expect_refused(record(Encoding::kZero, 1, kRegionPages, {}), DecodeError::kPageOutOfRange);
  expect_refused(record(Encoding::kZero, 2, kRegionPages - 1, {}), DecodeError::kPageOutOfRange);
  expect_refused(record(Encoding::kZero, 1, UINT64_MAX, {}), DecodeError::kPageOutOfRange);
  expect_refused(record(Encoding::kZero, 0xffff, 1, {}), DecodeError::kPageOutOfRange);
}

TEST_F(HostileRecord, PayloadLengthImpossibleForTheEncoding) {
  expect_refused(record(Encoding::kZero, 1, 0, Bytes(1)), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kRaw, 1, 0, Bytes(kPage - 1)), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kRaw, 1, 0, Bytes(kPage + 1)), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kDeflate, 1, 0, {}), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kDeflate, 1, 0, Bytes(kPage + 1)), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kDelta, 1, 0, Bytes(2 * kPage + 1)), DecodeError::kBadPayloadLength);
}

Bytes page_index(std::uint64_t page) {
  Bytes bytes(8);
  le64 value;
  value.set(page);
  std::memcpy(bytes.data(), &value, sizeof value);
  return bytes;
}

TEST_F(HostileRecord, CopyOfAPageOutsideTheRegionOrOfItselfOrOfSeveral) {
  expect_refused(record(Encoding::kCopy, 1, 2, page_index(kRegionPages)), DecodeError::kPageOutOfRange);
  expect_refused(record(Encoding::kCopy, 1, 2, page_index(UINT64_MAX)), DecodeError::kPageOutOfRange);
  expect_refused(record(Encoding::kCopy, 1, 2, page_index(2)), DecodeError::kPageOutOfRange);
  expect_refused(record(Encoding::kCopy, 2, 2, page_index(5)), DecodeError::kBadPageCount);
  expect_refused(record(Encoding::kCopy, 1, 2, Bytes(7)), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kCopy, 1, 2, Bytes(9)), DecodeError::kBadPayloadLength);
  expect_refused(record(Encoding::kCopy, 1, 2, Bytes(4), 0, 8), DecodeError::kTruncated);
}

TEST_F(HostileRecord, CopyTakesTheOtherPagesBytes) {
  Bytes region(kPage * kRegionPages, std::byte{0x77});
  std::memset(region.data() + 5 * kPage, 0x3c, kPage);
  ASSERT_EQ(decode(record(Encoding::kCopy, 1, 2, page_index(5)), &region), DecodeError::kNone);
  EXPECT_TRUE(std::all_of(region.begin() + 2 * kPage, region.begin() + 3 * kPage, [](std::byte b) {
    return b == std::byte{0x3c};
  }));
  EXPECT_EQ(region[3 * kPage], std::byte{0x77}) << "no other page changed";
}

TEST_F(HostileRecord, MalformedDeltaLeavesThePageAsItWas) {
  // unchanged 10, changed 5000: past the end of a 4 KiB page.
  expect_refused(record(Encoding::kDelta, 1, 3, {std::byte{10}, std::byte{0x88}, std::byte{0x27}}),
                 DecodeError::kBadDelta);
}

TEST_F(HostileRecord, GarbageDeflateStream) {
  Bytes garbage(300);
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = std::byte(i * 37);
  Bytes bytes = record(Encoding::kDeflate, 1, 2, garbage);
  EXPECT_EQ(decode(bytes, &region_), DecodeError::kBadDeflate);
  // Only the named page may have been touched.
  for (std::uint64_t p = 0; p < kRegionPages; ++p) {
    if (p == 2) continue;
    EXPECT_EQ(0, std::memcmp(region_.data() + p * kPage, Bytes(kPage, std::byte{0x77}).data(), kPage));
  }
}

// A header that arrived apart from its payload (the end of a segment) is checked the same
// way; the payload is taken from the start of what follows, and must all be there.
TEST(SplitRecord, HeaderApartFromItsPayloadParsesAsWhole) {
  const Bytes page = test::make_page(kPage, test::PageKind::kText, 3);
  const Bytes whole = record(Encoding::kRaw, 1, 2, page);
  const ParsedRecord contiguous = parse_record(whole, kPage, kRegionPages);
  const std::span<const std::byte> header(whole.data(), kRecordHeaderBytes);
  const std::span<const std::byte> following(whole.data() + kRecordHeaderBytes, whole.size() - kRecordHeaderBytes);
  const ParsedRecord split = parse_record(header, following, kPage, kRegionPages);
  ASSERT_EQ(contiguous.error, DecodeError::kNone);
  ASSERT_EQ(split.error, DecodeError::kNone);
  EXPECT_EQ(split.view.payload.data(), following.data());
  EXPECT_EQ(split.view.payload.size(), kPage);
  EXPECT_EQ(split.view.record_bytes, contiguous.view.record_bytes);
  EXPECT_EQ(parse_record(header, following.first(kPage - 1), kPage, kRegionPages).error, DecodeError::kTruncated);
  EXPECT_EQ(parse_record(header.first(kRecordHeaderBytes - 1), following, kPage, kRegionPages).error,
            DecodeError::kTruncated);
}

TEST_F(HostileRecord, ValidRecordsStillApply) {
  Bytes payload = test::make_page(kPage, test::PageKind::kText, 1);
  const Bytes bytes = concat(record(Encoding::kRaw, 1, 7, payload), record(Encoding::kZero, 2, 0, {}));
  EXPECT_EQ(decode(bytes, &region_), DecodeError::kNone);
  EXPECT_EQ(0, std::memcmp(region_.data() + 7 * kPage, payload.data(), kPage));
  EXPECT_EQ(region_[0], std::byte{0});
  EXPECT_EQ(region_[2 * kPage], std::byte{0x77});
}

}  // namespace
}  // namespace pagewire::pagecodec
