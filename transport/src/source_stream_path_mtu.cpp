// SourceStream: the path MTU mid-transfer (RFC 8899): a search after a black hole or to
// find a larger size again, its probes and their answers, and keepalives.
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <cstring>

#include "pagewire/transport/stream.hpp"
#include "source_stream_shared.hpp"

namespace pagewire::transport {

using namespace source_stream;

void SourceStream::start_mtu_search(PathMtuSearch search, bool after_loss, std::uint64_t now) {
  search_ = search;
  search_after_loss_ = after_loss;
  probe_size_ = 0;
  send_mtu_probe(now);
}

bool SourceStream::send_probe(std::uint32_t seq, std::uint16_t pad_to_ip_bytes) {
  const FrameFields probe{.type = FrameType::kProbe, .stream = index_, .session = session_, .seq = seq};
  return send_alone(probe, no_payload, pad_to_ip_bytes) != SendResult::kNoBuffer;
}

void SourceStream::send_keepalive() {
  send_probe(kKeepaliveProbeSeq, 0);  // not built: the next one will do
}

void SourceStream::send_mtu_probe(std::uint64_t now) {
  probe_sent_tsc_ = now;
  if (search_->testing() != probe_size_) {
    probe_size_ = search_->testing();
    first_probe_at_size_ = probe_id_ + 1;
  }
  // Not built: it counts as lost when its time is up.
  if (send_probe(probe_id_ + 1, search_->testing())) ++probe_id_;
}

void SourceStream::on_probe_ack(const ReceivedFrame& frame, std::uint64_t now) {
  if (search_ && seq_diff(frame.seq, first_probe_at_size_) >= 0 && seq_diff(frame.seq, probe_id_) <= 0) {
    const std::uint16_t passed = search_->testing();
    if (passed > path_mtu_) use_path_mtu(passed);  // larger frames from now on
    mtu_search_step(search_->on_answered(), now);
  }
}

// What the search says after a verdict. After a black hole, the size in use failing where
// small probes pass is what shrinks it: a descheduled peer or a congested queue also leaves
// timers silent for a while, and then both pass.
void SourceStream::mtu_search_step(PathMtuSearch::Next next, std::uint64_t now) {
  if (search_after_loss_ && search_->top_failed() && path_mtu_ > search_->largest_passing()) {
    ++counters_.black_holes;
    use_path_mtu(search_->largest_passing());
    timer_.restart();  // what is outstanding goes again, in parts, at the next timer
  }
  switch (next) {
    case PathMtuSearch::Next::kProbe:
      send_mtu_probe(now);
      return;
    case PathMtuSearch::Next::kDone:
      raise_due_tsc_ = now + us_to_tsc(std::uint64_t{tuning_.mtu_raise_interval_ms} * 1000, tsc_hz_);
      break;
    case PathMtuSearch::Next::kFailed:
      break;  // not even small frames pass: the peer timeout decides
  }
  search_.reset();
}

void SourceStream::use_path_mtu(std::uint16_t mtu) {
  path_mtu_ = std::min(mtu, initial_mtu_);
  payload_bytes_ = static_cast<std::uint16_t>(payload_for_mtu(path_mtu_, crypto_ != nullptr));
  encoder_.cut_raw_for(payload_bytes_);
  counters_.path_mtu = path_mtu_;
}

}  // namespace pagewire::transport
