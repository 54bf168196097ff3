// SourceStream: building frames, from the encoder straight into a frame (pages by
// reference where the port allows) or from the records staged for frames of their own.
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/stream.hpp"
#include "source_stream_shared.hpp"

namespace pagewire::transport {

using namespace source_stream;

// Encodes straight into a new frame when the encoder's records are whole in one and nothing
// is staged or half-framed. Returns the frame, or nullptr when the staging path must be used.
rte_mbuf* SourceStream::encode_into_frame() {
  if (!encoder_.records_fit_whole(payload_bytes_) || !staged_.empty() || !pages_left()) return nullptr;
  rte_mbuf* mbuf = alloc_frame();
  if (mbuf == nullptr) return nullptr;
  pagecodec::PageReferences references;
  const Work work = next_work();
  const pagecodec::EncodeProgress progress = encoder_.encode(*memory_, work.pages, generation_, {frame_payload(mbuf), payload_bytes_},
                                                             by_reference_ ? &references : nullptr);
  consumed(work, progress.pages_consumed);
  if (progress.bytes_written == 0) {
    rte_pktmbuf_free(mbuf);
    return nullptr;
  }
  attach_references(mbuf, progress.bytes_written, references);
  finish_frame(mbuf, path_,
               FrameFields{.type = FrameType::kData, .stream = index_, .session = session_, .seq = window_.next(),
                           .record_bounds = kFrameRecordBounds},
               static_cast<std::uint16_t>(progress.bytes_written), 0, crypto_);
  counters_.payload_bytes_sent += progress.bytes_written;
  return mbuf;
}

SourceStream::Work SourceStream::next_work() {
  if (!requests_.serving()) return {pages_, false};
  if (const auto asked = requests_.requested(); !asked.empty()) return {asked, true};
  const std::size_t unserved = requests_.unserved_prefix(&pages_);
  return {pages_.first(unserved), false};
}

void SourceStream::consumed(const Work& work, std::size_t count) {
  if (work.requested) {
    requests_.taken(count);
    counters_.pages_requested_sent += count;
  } else {
    pages_ = pages_.subspan(count);
  }
}

void SourceStream::attach_references(rte_mbuf* frame, std::size_t payload_bytes,
                                     const pagecodec::PageReferences& references) {
  if (references.count == 0) return;
  if (!attach_page_references(frame, static_cast<std::uint16_t>(payload_bytes), references, queue_.references)) {
    ++counters_.mbuf_exhausted;  // the pages are encoded already: copy them into their places
    for (std::size_t r = 0; r < references.count; ++r) {
      std::memcpy(frame_payload(frame) + references.items[r].offset, references.items[r].bytes, references.items[r].length);
    }
    return;
  }
  for (std::size_t r = 0; r < references.count; ++r) referenced_bytes_ += references.items[r].length;
  counters_.pages_by_reference += referenced_bytes_ / encoder_.config().page_size;
  referenced_bytes_ %= encoder_.config().page_size;
}

// Cuts the next frame from the staged records; nullptr when nothing is staged.
rte_mbuf* SourceStream::frame_from_staging() {
  // No pages, no memory yet: a stream that sends only FIN or keepalives has none assigned.
  if (staged_.bytes() < payload_bytes_ && !staged_.splitting() && pages_left()) {
    const Work work = next_work();
    std::span<const std::uint64_t> left = work.pages;
    staged_.refill(encoder_, *memory_, &left, generation_, by_reference_);
    consumed(work, work.pages.size() - left.size());
  }
  const std::size_t bytes = staged_.next_frame_bytes(payload_bytes_);
  if (bytes == 0) return nullptr;
  rte_mbuf* mbuf = alloc_frame();
  if (mbuf == nullptr) return nullptr;  // nothing was taken; try again next poll
  pagecodec::PageReferences references;
  const std::uint16_t starts = staged_.splitting() ? 0 : kFrameRecordStart;
  staged_.take(bytes, frame_payload(mbuf), &references);
  attach_references(mbuf, bytes, references);
  finish_frame(mbuf, path_,
               FrameFields{.type = FrameType::kData, .stream = index_, .session = session_, .seq = window_.next(),
                           .record_bounds = static_cast<std::uint16_t>(starts | (staged_.splitting() ? 0 : kFrameRecordEnd))},
               static_cast<std::uint16_t>(bytes), 0, crypto_);
  counters_.payload_bytes_sent += bytes;
  return mbuf;
}

}  // namespace pagewire::transport
