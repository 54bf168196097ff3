// Frames that carry RAW pages by reference: the frame's first buffer holds its headers and
// every record header, and the pages themselves are segments that point into guest memory
// (rte_pktmbuf_attach_extbuf), so the CPU never copies them; the NIC gathers the chain.
//
// Only for pages the guest cannot write until they are acknowledged: a retransmission reads
// guest memory again, and must send the bytes the first transmission, the record's CRC and
// the delta cache saw. The session allows it in rounds the caller declares stable (the
// switchover, guest paused), on ports that send chains, for clear frames (sealing writes,
// so an encrypted frame is a copy anyway).
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/transport/queue_ref.hpp"

namespace pagewire::transport {


// Turns `frame`, a frame being built whose payload (at frame_payload()) is written except
// where `references` point, into a chain: its own buffer up to the first page, the page,
// the record bytes up to the next page (a segment into the same buffer), and so on. Call
// before finish_frame(), which sums the chain. False, with `frame` as it was, when `segments`
// runs short.
bool attach_page_references(rte_mbuf* frame, std::uint16_t payload_bytes, const pagecodec::PageReferences& references,
                            const ReferenceSegments& segments);

}  // namespace pagewire::transport
