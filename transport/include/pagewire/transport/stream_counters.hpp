// What a stream counts: per stream, written by its own core only, summed on read.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "pagewire/transport/frame_drop.hpp"

namespace pagewire::transport {

struct StreamCounters {
  std::uint64_t frames_sent = 0;
  std::uint64_t payload_bytes_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t payload_bytes_received = 0;
  std::uint64_t retransmits_timeout = 0;
  std::uint64_t retransmits_sack = 0;
  std::uint64_t tail_probes = 0;           // resent after 2 SRTT with nothing new to send
  std::uint64_t acks_sent = 0;
  std::uint64_t acks_received = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t outside_window = 0;
  std::uint64_t mbuf_exhausted = 0;  // an allocation failed: retried on the next poll
  std::uint64_t tx_queue_full = 0;
  std::uint64_t stale_records = 0;         // older than the page's applied generation
  std::uint64_t delta_base_mismatch = 0;   // DELTA for a base the page does not hold
  std::uint64_t copy_source_mismatch = 0;  // COPY of a page not held at the version it names
  std::uint64_t record_errors = 0;         // refused by the decoder (see decoder counters)
  std::uint64_t resend_requests = 0;       // RESEND frames sent (destination) or taken (source)
  std::uint64_t pages_resent = 0;          // source: pages sent again in full on request
  std::uint64_t page_requests = 0;         // postcopy: PAGE_REQUEST frames sent (destination) or taken (source)
  std::uint64_t pages_requested = 0;       // postcopy: pages asked for (destination) or queued to go first (source)
  std::uint64_t page_requests_refused = 0; // source: pages asked for outside the round, or past the bounded queue
  std::uint64_t pages_requested_sent = 0;  // source: pages sent ahead of the round on request
  std::uint64_t black_holes = 0;           // source: full-size frames lost while small probes passed
  std::uint64_t path_mtu = 0;              // source: the MTU this stream now uses
  std::uint64_t fragments_sent = 0;        // source: parts of frames built before the MTU fell
  std::uint64_t fragments_received = 0;    // destination: such parts
  std::uint64_t reassembly_full = 0;       // destination: parts dropped, every rebuild slot busy
  std::uint64_t pages_by_reference = 0;    // source: RAW payloads sent from guest memory (zero-copy)
  std::uint64_t probes_received = 0;       // destination: PROBEs answered (path probes and keepalives)
  std::uint64_t srtt_us = 0;
  std::uint64_t peer_window = 0;           // source: frames the destination last said it would hold
  std::uint64_t peak_in_flight = 0;        // source: most frames in flight at once (the window reached)
  std::uint64_t held_in_reserve = 0;       // destination: out-of-order frames moved to the stream's own pools
  std::uint64_t applied_ahead = 0;         // destination: out-of-order frames applied as they came, not held
  std::array<std::uint64_t, kFrameDropCount> drops{};
};

// Counters live per stream and are summed on read; srtt takes the slowest stream's, the
// path MTU and the peer's window the smallest, the peak in flight the largest.
inline StreamCounters& operator+=(StreamCounters& total, const StreamCounters& c) {
  total.frames_sent += c.frames_sent;
  total.payload_bytes_sent += c.payload_bytes_sent;
  total.frames_received += c.frames_received;
  total.payload_bytes_received += c.payload_bytes_received;
  total.retransmits_timeout += c.retransmits_timeout;
  total.retransmits_sack += c.retransmits_sack;
  total.tail_probes += c.tail_probes;
  total.acks_sent += c.acks_sent;
  total.acks_received += c.acks_received;
  total.duplicates += c.duplicates;
  total.out_of_order += c.out_of_order;
  total.outside_window += c.outside_window;
  total.mbuf_exhausted += c.mbuf_exhausted;
  total.tx_queue_full += c.tx_queue_full;
  total.stale_records += c.stale_records;
  total.delta_base_mismatch += c.delta_base_mismatch;
  total.copy_source_mismatch += c.copy_source_mismatch;
  total.record_errors += c.record_errors;
  total.resend_requests += c.resend_requests;
  total.pages_resent += c.pages_resent;
  total.page_requests += c.page_requests;
  total.pages_requested += c.pages_requested;
  total.page_requests_refused += c.page_requests_refused;
  total.pages_requested_sent += c.pages_requested_sent;
  total.black_holes += c.black_holes;
  if (c.path_mtu != 0) total.path_mtu = total.path_mtu == 0 ? c.path_mtu : std::min(total.path_mtu, c.path_mtu);
  total.fragments_sent += c.fragments_sent;
  total.fragments_received += c.fragments_received;
  total.reassembly_full += c.reassembly_full;
  total.pages_by_reference += c.pages_by_reference;
  total.probes_received += c.probes_received;
  total.srtt_us = std::max(total.srtt_us, c.srtt_us);
  if (c.peer_window != 0) {
    total.peer_window = total.peer_window == 0 ? c.peer_window : std::min(total.peer_window, c.peer_window);
  }
  total.held_in_reserve += c.held_in_reserve;
  total.applied_ahead += c.applied_ahead;
  total.peak_in_flight = std::max(total.peak_in_flight, c.peak_in_flight);
  for (std::size_t d = 0; d < total.drops.size(); ++d) total.drops[d] += c.drops[d];
  return total;
}

}  // namespace pagewire::transport
