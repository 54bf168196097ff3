// The receiving end of a record stream: bytes in order, in pieces of any size (frames, the
// segments of a frame), whole records out. A record that lies within one piece is handed
// over where it lies; one cut across pieces is assembled in a buffer of the negotiated
// largest record; a header that arrives alone is handed over with its payload where that
// lies (a page sent by reference behind its header). The transport carries bytes; only
// this reads a record's length. Every length is hostile input: a record to be assembled that
// announces more than the largest stops the stream before its payload is copied.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "pagewire/pagecodec/record.hpp"

namespace pagewire::pagecodec {

class RecordStreamReader {
 public:
  explicit RecordStreamReader(std::size_t max_record_bytes) : partial_(max_record_bytes) {}

  // Hands each whole record to `on_record(first, rest)`: `first` is the record, or only
  // its header when `rest` holds the payload (where it lies, behind a header that was
  // assembled). `on_record` returns false to stop (the caller failed). Returns false once
  // stopped, by the caller or by a record too large (error() says so); later calls do
  // nothing. No allocation: the assembly buffer is sized at construction.
  template <typename OnRecord>
  bool feed(std::span<const std::byte> bytes, OnRecord&& on_record) {
    while (!bytes.empty() && !stopped_) {
      if (assembled_ == 0 && bytes.size() >= kRecordHeaderBytes) {
        // Whole within the piece: the decoder bounds it against the region, as any record.
        const std::size_t record = record_bytes_at(bytes.data());
        if (record <= bytes.size()) {
          stopped_ = !on_record(bytes.first(record), std::span<const std::byte>{});
          bytes = bytes.subspan(record);
          continue;
        }
      }
      if (assembled_ == kRecordHeaderBytes && record_bytes_at(partial_.data()) - kRecordHeaderBytes <= bytes.size()) {
        const std::size_t payload = record_bytes_at(partial_.data()) - kRecordHeaderBytes;
        stopped_ = !on_record(std::span<const std::byte>(partial_.data(), kRecordHeaderBytes), bytes.first(payload));
        assembled_ = 0;
        bytes = bytes.subspan(payload);
        continue;
      }
      bytes = assemble(bytes);
      if (stopped_ || assembled_ < kRecordHeaderBytes || assembled_ < record_bytes_at(partial_.data())) continue;
      stopped_ = !on_record(std::span<const std::byte>(partial_.data(), assembled_), std::span<const std::byte>{});
      assembled_ = 0;
    }
    return !stopped_;
  }

  // Whether `length` bytes (a run of frames' payloads) are whole records end to end, each of an
  // encoding `accept(Encoding)` takes: what a receiver may apply out of order.
  // `read_header(offset, out)` copies the kRecordHeaderBytes at `offset` into `out`.
  // Lengths are hostile: a record running past `length` says no.
  template <typename ReadHeader, typename Accept>
  static bool whole_records(std::size_t length, ReadHeader&& read_header, Accept&& accept) {
    std::size_t at = 0;
    while (at < length) {
      if (length - at < kRecordHeaderBytes) return false;
      RecordHeader header{};
      read_header(at, reinterpret_cast<std::byte*>(&header));
      if (!accept(static_cast<Encoding>(header.encoding))) return false;
      const std::size_t record = kRecordHeaderBytes + header.payload_bytes.get();
      if (record > length - at) return false;
      at += record;
    }
    return at == length && length > 0;
  }

  // Why the stream stopped on its own: a record larger than the largest; empty otherwise.
  const std::string& error() const { return error_; }
  // Bytes of a record cut across pieces, waiting for the rest.
  std::size_t pending() const { return assembled_; }

 private:
  static std::size_t record_bytes_at(const std::byte* header_bytes) {
    RecordHeader header;
    std::memcpy(&header, header_bytes, sizeof header);
    return kRecordHeaderBytes + header.payload_bytes.get();
  }

  // Copies what the record being assembled still needs (its header first, then the rest);
  // returns what is left of `bytes`.
  std::span<const std::byte> assemble(std::span<const std::byte> bytes) {
    const std::size_t need = assembled_ < kRecordHeaderBytes ? kRecordHeaderBytes : record_bytes_at(partial_.data());
    const std::size_t take = std::min(bytes.size(), need - assembled_);
    std::memcpy(partial_.data() + assembled_, bytes.data(), take);
    assembled_ += take;
    if (assembled_ >= kRecordHeaderBytes && record_bytes_at(partial_.data()) > partial_.size()) {
      too_large(record_bytes_at(partial_.data()));
    }
    return bytes.subspan(take);
  }

  void too_large(std::size_t record) {
    error_ = "a record of " + std::to_string(record) + " bytes exceeds the negotiated maximum of " +
             std::to_string(partial_.size());
    stopped_ = true;
  }

  std::vector<std::byte> partial_;
  std::size_t assembled_ = 0;
  bool stopped_ = false;
  std::string error_;
};

}  // namespace pagewire::pagecodec
