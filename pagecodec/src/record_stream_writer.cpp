#include "pagewire/pagecodec/record_stream_writer.hpp"

#include <algorithm>
#include <cstring>

#include "pagewire/pagecodec/record.hpp"

namespace pagewire::pagecodec {

RecordStreamWriter::RecordStreamWriter(std::size_t max_record_bytes, std::size_t max_frame_payload)
    : bytes_(2 * (max_record_bytes + max_frame_payload)) {}

bool RecordStreamWriter::refill(Encoder& encoder, const PageMap& memory, std::span<const std::uint64_t>* pages,
                           std::uint32_t generation, bool by_reference) {
  if (pages->empty()) return false;
  if (begin_ > 0) {
    std::memmove(bytes_.data(), bytes_.data() + begin_, end_ - begin_);
    for (std::size_t r = 0; r < reference_count_; ++r) {
      references_[r] = references_[first_reference_ + r];
      references_[r].offset -= begin_;
    }
    first_reference_ = 0;
    end_ -= begin_;
    begin_ = 0;
  }
  const std::span<std::byte> room(bytes_.data() + end_, bytes_.size() - end_);
  if (room.size() < encoder.max_record_bytes()) return false;
  PageReferences added;
  const bool referencing = by_reference && reference_count_ + PageReferences::kMax <= kMaxReferences;
  const EncodeProgress progress =
      encoder.encode(memory, *pages, generation, room, referencing ? &added : nullptr);
  *pages = pages->subspan(progress.pages_consumed);
  for (std::size_t r = 0; r < added.count; ++r) {
    PageReference reference = added.items[r];
    reference.offset += end_;
    references_[first_reference_ + reference_count_++] = reference;
  }
  end_ += progress.bytes_written;
  return progress.bytes_written > 0;
}

std::size_t RecordStreamWriter::next_frame_bytes(std::size_t payload_bytes) const {
  std::size_t take = 0;
  if (record_left_ > 0) {
    if (record_left_ >= payload_bytes) return payload_bytes;
    take = record_left_;
  }
  while (begin_ + take + kRecordHeaderBytes <= end_) {
    RecordHeader header;
    std::memcpy(&header, bytes_.data() + begin_ + take, sizeof header);
    const std::size_t record = kRecordHeaderBytes + header.payload_bytes.get();
    if (take + record <= payload_bytes) {
      take += record;
    } else if (take == 0) {
      return payload_bytes;  // larger than a frame: split
    } else {
      break;
    }
  }
  return take;
}

void RecordStreamWriter::take(std::size_t bytes, std::byte* payload, PageReferences* references) {
  const std::size_t from = begin_;
  const std::size_t to = begin_ + bytes;
  references->count = 0;
  std::size_t placed = from;  // staged bytes before this are in `payload` or referenced
  for (std::size_t r = first_reference_; r < first_reference_ + reference_count_; ++r) {
    const PageReference& staged = references_[r];
    const std::size_t slice_begin = std::max(staged.offset, from);
    const std::size_t slice_end = std::min<std::size_t>(staged.offset + staged.length, to);
    if (slice_begin >= to) break;
    std::memcpy(payload + (placed - from), bytes_.data() + placed, slice_begin - placed);
    const std::byte* guest = staged.bytes + (slice_begin - staged.offset);
    const auto length = static_cast<std::uint32_t>(slice_end - slice_begin);
    if (references->count < PageReferences::kMax) {
      references->items[references->count++] = PageReference{slice_begin - from, guest, length};
    } else {
      std::memcpy(payload + (slice_begin - from), guest, length);  // more slices than a chain takes
    }
    placed = slice_end;
  }
  std::memcpy(payload + (placed - from), bytes_.data() + placed, to - placed);
  while (reference_count_ > 0 &&
         references_[first_reference_].offset + references_[first_reference_].length <= to) {
    ++first_reference_;
    --reference_count_;
  }
  // Follow the record boundaries: the next frame must know whether it continues a record.
  for (std::size_t left = bytes; left > 0;) {
    if (record_left_ == 0) {
      RecordHeader header;
      std::memcpy(&header, bytes_.data() + begin_, sizeof header);
      record_left_ = kRecordHeaderBytes + header.payload_bytes.get();
    }
    const std::size_t step = std::min(left, record_left_);
    record_left_ -= step;
    begin_ += step;
    left -= step;
  }
}

}  // namespace pagewire::pagecodec
