// The sending side of a record stream: records encoded ahead of being cut into pieces of a
// transport's frame size, for what a frame cannot take whole as it is encoded, such as a
// RAW page at MTU 1500 (split over frames) or a DEFLATE batch (sized before it is
// compressed). Pieces are cut at record boundaries where records fit, and a record larger
// than a piece is split; RecordStreamReader puts the pieces back together. The transport
// carries the bytes and never reads a record header.
//
// RAW payloads may stay in guest memory (PageReferences): the staged bytes have a hole
// where such a payload belongs, and each piece cut over the hole says where in the guest
// its slice is (a transport points its frame there: zero-copy).
//
// One per source stream, used by its core only; the buffer is allocated once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "pagewire/pagecodec/encoder.hpp"

namespace pagewire::pagecodec {

class RecordStreamWriter {
 public:
  // Room for two of the largest records a frame of `max_frame_payload` bytes is cut from.
  RecordStreamWriter(std::size_t max_record_bytes, std::size_t max_frame_payload);

  bool empty() const { return begin_ == end_; }
  std::size_t bytes() const { return end_ - begin_; }
  // The next frame must carry the rest of a record that an earlier frame began.
  bool splitting() const { return record_left_ != 0; }

  // Encodes more of `*pages` behind what is staged and drops what it encoded from `*pages`.
  // `by_reference`: RAW payloads stay in guest memory (pages the guest cannot write until
  // they are acknowledged). False when nothing was added.
  bool refill(Encoder& encoder, const PageMap& memory, std::span<const std::uint64_t>* pages,
              std::uint32_t generation, bool by_reference);

  // How many staged bytes the next frame carries, with `payload_bytes` of room: the rest of
  // a split record, then whole records while they fit; a record larger than the room is
  // split. 0: nothing is staged.
  std::size_t next_frame_bytes(std::size_t payload_bytes) const;

  // Moves the next `bytes` (from next_frame_bytes()) into `payload`, except the parts that
  // are in guest memory: those are described in `references`, at offsets within `payload`.
  void take(std::size_t bytes, std::byte* payload, PageReferences* references);

 private:
  // Staged RAW payloads left in guest memory, in order, at offsets into bytes_.
  static constexpr std::size_t kMaxReferences = 2 * PageReferences::kMax;

  std::vector<std::byte> bytes_;
  std::size_t begin_ = 0, end_ = 0;  // [begin_, end_) is staged
  std::size_t record_left_ = 0;      // of the record at begin_, when a frame took its start
  std::array<PageReference, kMaxReferences> references_{};
  std::size_t first_reference_ = 0, reference_count_ = 0;  // references_[first_reference_..]
};

}  // namespace pagewire::pagecodec
