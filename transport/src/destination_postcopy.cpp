// DestinationSession's postcopy: the switch the source asks for, the streams turned to hand
// what arrives to the observer to place, and the guest's faults handed to the stream that
// owns each page.
#include <rte_lcore.h>
#include <rte_ring.h>

#include <string>

#include "destination_responder.hpp"
#include "pagewire/transport/session.hpp"
#include "pagewire/transport/stream.hpp"

namespace pagewire::transport {

namespace {
// Per stream: more faults at once than a guest has vCPUs, with room for their neighbours.
constexpr unsigned kRequestRingSlots = 1024;
}  // namespace

bool DestinationSession::postcopy_requested() const { return responder_->postcopy_pending(); }

Status DestinationSession::begin_postcopy() {
  if (config_.applied_pages == nullptr) {
    return make_error(ErrorCode::kConfiguration, "postcopy needs SessionConfig::applied_pages: something must place "
                                                 "the pages where the guest waits for them");
  }
  for (std::uint16_t s = 0; s < streams_.size(); ++s) {
    const std::string name = "pw_req_" + std::to_string(session_) + "_" + std::to_string(s);
    // Several fault threads may ask (one per RAM block): multi-producer; the stream's core
    // alone takes.
    rte_ring* ring = rte_ring_create_elem(name.c_str(), sizeof(std::uint64_t), kRequestRingSlots, rte_socket_id(),
                                          RING_F_SC_DEQ);
    if (ring == nullptr) {
      return make_error(ErrorCode::kSystem, "postcopy: no memory for stream " + std::to_string(s) +
                                                "'s page requests (" + std::string(rte_strerror(rte_errno)) + ")");
    }
    page_requests_.push_back(ring);
    streams_[s].begin_postcopy(ring);
  }
  return Ok{};
}

void DestinationSession::answer_postcopy(bool running, const std::string& reason) {
  responder_->answer_postcopy(running, reason);
}

bool DestinationSession::request_page(std::uint64_t page) {
  if (page_requests_.empty() || page >= source_pages_) return false;
  const std::uint16_t s = stream_of_page(page, source_pages_, static_cast<std::uint16_t>(streams_.size()));
  return rte_ring_enqueue_elem(page_requests_[s], &page, sizeof page) == 0;
}

}  // namespace pagewire::transport
