// The receiving end of a record stream (RecordStreamReader): records cut at every place a
// frame or a segment may cut them arrive whole, byte for byte; a header alone is handed
// over with its payload where that lies; a hostile length stops the stream before a byte
// is copied.
#include "pagewire/pagecodec/record_stream_reader.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <span>
#include <vector>

namespace pagewire::pagecodec {
namespace {

using Bytes = std::vector<std::byte>;

Bytes record_of(std::uint32_t payload_bytes, std::uint64_t first_page, Encoding encoding = Encoding::kRaw) {
  RecordHeader header{};
  header.encoding = static_cast<std::uint8_t>(encoding);
  header.page_count.set(1);
  header.payload_bytes.set(payload_bytes);
  header.first_page.set(first_page);
  Bytes record(kRecordHeaderBytes + payload_bytes);
  std::memcpy(record.data(), &header, sizeof header);
  for (std::uint32_t i = 0; i < payload_bytes; ++i) record[kRecordHeaderBytes + i] = std::byte(first_page * 31 + i);
  return record;
}

// What the reader handed over, each record as one run of bytes, and how often it came as
// a header with its payload apart.
struct Handed {
  std::vector<Bytes> records;
  int header_apart = 0;
};

bool feed_in_pieces(RecordStreamReader& reader, const Bytes& stream, const std::vector<std::size_t>& cuts, Handed* out) {
  std::size_t at = 0;
  bool ok = true;
  auto take = [out](std::span<const std::byte> first, std::span<const std::byte> rest) {
    Bytes record(first.begin(), first.end());
    record.insert(record.end(), rest.begin(), rest.end());
    out->header_apart += !rest.empty();
    out->records.push_back(std::move(record));
    return true;
  };
  for (std::size_t cut : cuts) {
    ok = reader.feed(std::span<const std::byte>(stream).subspan(at, cut - at), take) && ok;
    at = cut;
  }
  return reader.feed(std::span<const std::byte>(stream).subspan(at), take) && ok;
}

TEST(RecordStreamReader, RecordsCutAnywhereArriveWhole) {
  std::vector<Bytes> records;
  Bytes stream;
  for (std::uint32_t r = 0; r < 40; ++r) {
    records.push_back(record_of(r % 5 == 0 ? 0 : 17 * r + 1, r));  // header-only records too
    stream.insert(stream.end(), records.back().begin(), records.back().end());
  }
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = rng() % 40; at < stream.size(); at += 1 + rng() % (trial % 2 ? 7 : 300)) cuts.push_back(at);
    RecordStreamReader reader(1024);
    Handed handed;
    ASSERT_TRUE(feed_in_pieces(reader, stream, cuts, &handed)) << reader.error();
    ASSERT_EQ(handed.records, records) << "trial " << trial;
    EXPECT_EQ(reader.pending(), 0u);
  }
}

TEST(RecordStreamReader, AHeaderAloneIsHandedOverWithItsPayloadWhereItLies) {
  const Bytes record = record_of(500, 9);
  RecordStreamReader reader(600);
  Handed handed;
  // The header ends one piece (a segment); the payload is the next (a page by reference).
  ASSERT_TRUE(feed_in_pieces(reader, record, {kRecordHeaderBytes}, &handed));
  ASSERT_EQ(handed.records.size(), 1u);
  EXPECT_EQ(handed.records[0], record);
  EXPECT_EQ(handed.header_apart, 1) << "not copied into the assembly buffer";
}

TEST(RecordStreamReader, ARecordToAssembleLargerThanTheMaximumStopsTheStreamBeforeACopy) {
  const Bytes huge = record_of(5000, 1);
  for (const std::vector<std::size_t>& cuts : {std::vector<std::size_t>{10}, {kRecordHeaderBytes - 1}, {40, 41}}) {
    RecordStreamReader reader(1024);
    Handed handed;
    EXPECT_FALSE(feed_in_pieces(reader, huge, cuts, &handed));
    EXPECT_TRUE(handed.records.empty());
    EXPECT_EQ(reader.error(), "a record of 5032 bytes exceeds the negotiated maximum of 1024");
    EXPECT_LE(reader.pending(), kRecordHeaderBytes) << "nothing beyond the header was copied";
    // Stopped: what follows is not read.
    const Bytes next = record_of(10, 2);
    EXPECT_FALSE(reader.feed(next, [](auto, auto) { return true; }));
  }
}

TEST(RecordStreamReader, TheCallerStopsItByReturningFalse) {
  Bytes stream = record_of(8, 1);
  const Bytes second = record_of(8, 2);
  stream.insert(stream.end(), second.begin(), second.end());
  RecordStreamReader reader(64);
  int handed = 0;
  EXPECT_FALSE(reader.feed(stream, [&](auto, auto) { return ++handed < 1; }));
  EXPECT_EQ(handed, 1) << "nothing after the refusal";
  EXPECT_EQ(reader.error(), "") << "the caller said why, not the reader";
}

// A frame's payload may be applied ahead of a hole only when it is whole records end to end,
// each of an encoding the receiver takes out of order (here: all but DELTA and COPY); its
// lengths are hostile input, read header by header through the caller's reader (a frame
// may lie in segments).
bool whole_and_order_free(const Bytes& payload) {
  return RecordStreamReader::whole_records(
      payload.size(),
      [&](std::size_t at, std::byte* header) {
        ASSERT_LE(at + kRecordHeaderBytes, payload.size()) << "read past the payload";
        std::memcpy(header, payload.data() + at, kRecordHeaderBytes);
      },
      [](Encoding encoding) { return !builds_on_held(encoding); });
}

Bytes joined(const std::vector<Bytes>& records) {
  Bytes out;
  for (const Bytes& r : records) out.insert(out.end(), r.begin(), r.end());
  return out;
}

TEST(RecordStreamReader, OnlyWholeRecordsOfAcceptedEncodingsMayBeAppliedAheadOfAHole) {
  const Bytes raw = record_of(4096, 1), zero = record_of(0, 2, Encoding::kZero), deflate = record_of(900, 3, Encoding::kDeflate);
  EXPECT_TRUE(whole_and_order_free(joined({raw, zero, deflate})));
  EXPECT_TRUE(whole_and_order_free(joined({zero})));
  EXPECT_FALSE(whole_and_order_free(Bytes{})) << "nothing to apply";
  EXPECT_FALSE(whole_and_order_free(joined({raw, record_of(40, 4, Encoding::kDelta)})))
      << "an encoding the receiver does not take";
  EXPECT_FALSE(whole_and_order_free(joined({record_of(8, 5, Encoding::kCopy), raw}))) << "the first one too";

  Bytes cut = joined({raw, deflate});
  cut.resize(cut.size() - 1);
  EXPECT_FALSE(whole_and_order_free(cut)) << "the last record runs on into the next frame";
  Bytes trailing = joined({raw});
  trailing.resize(trailing.size() + kRecordHeaderBytes - 1);
  EXPECT_FALSE(whole_and_order_free(trailing)) << "bytes too few for a header after the last record";

  // A hostile length: far past the frame, and one that wraps a size_t sum.
  Bytes huge = joined({raw, zero});
  RecordHeader header;
  std::memcpy(&header, huge.data() + raw.size(), sizeof header);
  header.payload_bytes.set(0xffffffffu);
  std::memcpy(huge.data() + raw.size(), &header, sizeof header);
  EXPECT_FALSE(whole_and_order_free(huge));
}

}  // namespace
}  // namespace pagewire::pagecodec
