#include "pagewire/transport/zero_copy_frame.hpp"

#include <utility>

#include "pagewire/transport/frame.hpp"

namespace pagewire::transport {

bool attach_page_references(rte_mbuf* frame, std::uint16_t payload_bytes, const pagecodec::PageReferences& references,
                            const ReferenceSegments& segments) {
  if (references.count == 0) return true;
  // The record bytes after page r: up to the next page, or to the payload's end.
  auto gap_after = [&](std::size_t r) {
    const std::size_t end = references.items[r].offset + references.items[r].length;
    const std::size_t next = r + 1 < references.count ? references.items[r + 1].offset : payload_bytes;
    return std::pair<std::size_t, std::size_t>{end, next};
  };
  // One segment per page, and one per non-empty gap.
  std::uint16_t needed = 0;
  for (std::size_t r = 0; r < references.count; ++r) {
    const auto [end, next] = gap_after(r);
    needed = static_cast<std::uint16_t>(needed + 1 + (next > end ? 1 : 0));
  }
  rte_mbuf* parts[2 * pagecodec::PageReferences::kMax];
  if (rte_pktmbuf_alloc_bulk(segments.pool, parts, needed) != 0) return false;

  const auto payload_at = static_cast<std::uint16_t>(frame_payload(frame) - rte_pktmbuf_mtod(frame, std::byte*));
  frame->data_len = static_cast<std::uint16_t>(payload_at + references.items[0].offset);
  rte_mbuf* tail = frame;
  std::uint16_t used = 0;
  for (std::size_t r = 0; r < references.count; ++r) {
    const pagecodec::PageReference& page = references.items[r];
    rte_mbuf* guest = parts[used++];
    void* bytes = const_cast<std::byte*>(page.bytes);  // read only: the device sends from it
    rte_mbuf_ext_refcnt_update(segments.info, 1);
    // Virtual devices read with the CPU; a DMA device was given the region IOVA-as-VA
    // (Port::map_for_dma).
    rte_pktmbuf_attach_extbuf(guest, bytes, reinterpret_cast<std::uintptr_t>(bytes),
                              static_cast<std::uint16_t>(page.length), segments.info);
    guest->data_len = static_cast<std::uint16_t>(page.length);
    tail->next = guest;
    tail = guest;
    const auto [end, next] = gap_after(r);
    if (next > end) {
      rte_mbuf* records = parts[used++];
      rte_pktmbuf_attach(records, frame);  // holds the frame's buffer until it is freed
      records->data_off = static_cast<std::uint16_t>(frame->data_off + payload_at + end);
      records->data_len = static_cast<std::uint16_t>(next - end);
      tail->next = records;
      tail = records;
    }
  }
  frame->nb_segs = static_cast<std::uint16_t>(1 + used);
  return true;
}

}  // namespace pagewire::transport
