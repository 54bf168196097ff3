// One stream = one lcore = one RX/TX queue pair = its own codec state and counters.
//
// A stream carries an ordered byte stream of page records. DATA frames cut it at record
// boundaries where records fit, and split records larger than a frame. Reliability is
// per stream: sequence numbers, cumulative + selective ACKs, retransmission on an
// RTT-estimated timeout (RFC 6298, Karn's rule) and on SACK gaps, duplicate suppression,
// and a receive window. The receiver applies frames strictly in sequence order (holding
// out-of-order mbufs, not copies), so a DELTA always meets the base it was encoded
// against; the per-page generation check is a second line of defence.
//
// Threading: every method except the constructor and counters() belongs to the stream's
// own core. The session calls assign()/finish() only while the stream is idle (poll()
// returned false), before the core polls again.
#pragma once

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <span>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/pagecodec/record_stream_writer.hpp"
#include "pagewire/pagecodec/record_stream_reader.hpp"
#include "pagewire/transport/applied_pages.hpp"
#include "pagewire/transport/frame.hpp"
#include "pagewire/transport/fragment_rebuilds.hpp"
#include "pagewire/transport/frame_reserve.hpp"
#include "pagewire/transport/link_rate_estimate.hpp"
#include "pagewire/transport/pacing_controller.hpp"
#include "pagewire/transport/page_requests.hpp"
#include "pagewire/transport/path_mtu_search.hpp"
#include "pagewire/transport/published_counters.hpp"
#include "pagewire/transport/receive_window.hpp"
#include "pagewire/transport/retransmit_timer.hpp"
#include "pagewire/transport/send_window.hpp"
#include "pagewire/transport/stop_reason.hpp"
#include "pagewire/transport/queue_ref.hpp"
#include "pagewire/transport/stream_counters.hpp"
#include "pagewire/transport/stream_tuning.hpp"
#include "pagewire/transport/zero_copy_frame.hpp"

namespace pagewire::transport {

// Sequence slots of a stream's window at either end (frames of `frame_bytes` each):
// receive_window_frames if set, else what window_memory_bytes holds, a power of two
// between the old fixed 4096 and 2^18 (a slot costs 64 bytes at the source).
inline std::uint32_t window_slots(const StreamTuning& tuning, std::uint32_t frame_bytes) {
  if (tuning.receive_window_frames != 0) return tuning.receive_window_frames;
  const std::uint64_t frames = tuning.window_memory_bytes / (frame_bytes + sizeof(rte_mbuf));
  return static_cast<std::uint32_t>(std::bit_ceil(std::clamp<std::uint64_t>(frames, 4096, 1u << 18)));
}

// Which lcores poll a stream. One for its whole life is the threading contract (a stream
// core of its own, or the one thread that polls them all); tests check it.
class PollOwner {
 public:
  static constexpr unsigned kNone = ~0u - 1;  // never polled (LCORE_ID_ANY is ~0u: a non-EAL thread)
  void note(unsigned lcore) {
    if (lcore_ == kNone) lcore_ = lcore;
    else if (lcore != lcore_) shared_ = true;
  }
  unsigned lcore() const { return lcore_; }  // the first poller's
  bool shared() const { return shared_; }    // another lcore polled it too

 private:
  unsigned lcore_ = kNone;
  bool shared_ = false;
};

class SourceStream {
 public:
  // `crypto` (null: the session has no key) seals every frame and opens every ACK; it
  // belongs to this stream's queue, and so to its core while it polls.
  SourceStream(std::uint16_t index, QueueRef queue, const Path& path, std::uint32_t session,
               std::uint16_t payload_bytes, const StreamTuning& tuning, pagecodec::Encoder encoder,
               FrameCrypto* crypto);
  SourceStream(SourceStream&&) noexcept = default;
  ~SourceStream();

  // Pages of this stream to send in this round (ascending), tagged with `generation`.
  // `stable`: the guest cannot write them until they are acknowledged (zero-copy allowed).
  void assign(std::span<const std::uint64_t> pages, const pagecodec::PageMap* memory, std::uint32_t generation,
              bool stable = false);
  // Postcopy, after assign(): this round's pages are what the destination is missing, its
  // guest runs, and pages it asks for (PAGE_REQUEST) go first. Every page goes whole from
  // now on (Encoder::stop_building_on_receiver). [first_page, end_page): this stream's pages.
  void serve_page_requests(std::uint64_t first_page, std::uint64_t end_page);
  // A frame of this stream's queue, parsed and opened, that another loop read (the
  // switchover's exchanges on queue 0): an ACK, RESEND, PAGE_REQUEST, probe answer or ABORT
  // is taken as poll() would take it, so none is lost or left uncounted meanwhile.
  void take(const ReceivedFrame& frame, std::uint64_t now);
  // After the last round: send FIN until the destination confirms.
  void finish();
  // The rate cap to follow from now on (bytes per second, 0: none), which another thread may
  // change at any time (SourceSession::set_rate_cap); read once per poll. Null: the cap of
  // StreamTuning stays. Set before the stream's core starts polling.
  void follow_rate_cap(const std::atomic<double>* cap) { live_rate_cap_ = cap; }
  // A small PROBE the destination answers: a sign of life from a source busy with its own
  // work between rounds (SourceSession::keep_alive_while).
  void send_keepalive();

  // One data-path step: ACKs in, timers, frames out. Returns true while work remains (pages
  // to encode, frames unacknowledged, or a FIN unconfirmed).
  bool poll(std::uint64_t now_tsc);

  bool finished() const { return fin_acked_; }
  const StreamCounters& counters() const { return counters_; }
  // The counters as other threads may read them (telemetry), refreshed every millisecond.
  const PublishedCounters& published() const { return *published_; }
  const pagecodec::Encoder& encoder() const { return encoder_; }
  std::uint16_t path_mtu() const { return path_mtu_; }
  std::uint16_t payload_bytes() const { return payload_bytes_; }
  bool congestion_controlled() const { return pacing_on_; }
  const PollOwner& poll_owner() const { return poll_owner_; }
  // Any thread: the destination sent ABORT (it was cancelled, or gave up), and why.
  const StopReason& destination_abort() const { return *destination_abort_; }

 private:
  using InFlight = SendWindow<rte_mbuf>::Entry;

  void receive(std::uint64_t now);
  void take_page_request(const ReceivedFrame& frame);
  void on_ack(const ReceivedFrame& frame, std::uint64_t now);
  // The pacing controller's stamp for every transmission (new or again) of `entry`.
  void stamp_sent(InFlight& entry, std::uint64_t now);
  std::uint64_t inflight_bytes() const { return std::uint64_t{window_.in_flight()} * frame_bytes_; }
  // Sent and not known to have arrived: built frames waiting for tokens are not on the path.
  std::uint64_t sent_inflight_bytes() const { return std::uint64_t{window_.sent_in_flight()} * frame_bytes_; }
  void retransmit_due(std::uint64_t now);
  void transmit(std::uint64_t now);
  rte_mbuf* encode_into_frame();
  rte_mbuf* frame_from_staging();
  // The pages to encode next: those the destination asked for first (postcopy), else the
  // round's, up to the next one already sent on request. consumed() takes them off.
  struct Work {
    std::span<const std::uint64_t> pages;
    bool requested;
  };
  Work next_work();
  void consumed(const Work& work, std::size_t count);
  bool pages_left() const { return !pages_.empty() || !requests_.idle(); }
  // Points the frame being built at the guest where `references` say (copies instead when
  // the port runs short of segments), and counts what went by reference.
  void attach_references(rte_mbuf* frame, std::size_t payload_bytes, const pagecodec::PageReferences& references);
  bool send_one(rte_mbuf* mbuf, std::uint64_t now);
  // Sends a frame we hold, whole, or in parts if the path's MTU has fallen below it.
  bool send_held(rte_mbuf* mbuf, std::uint64_t now);
  bool send_parts(const rte_mbuf* frame, PayloadRange payload, std::uint64_t now);
  // Path-MTU search on this stream's queue (RFC 8899), after a black hole or to raise it.
  void start_mtu_search(PathMtuSearch search, bool after_loss, std::uint64_t now);
  void send_mtu_probe(std::uint64_t now);
  // A PROBE padded to `pad_to_ip_bytes` (0: not padded). False when no mbuf was free.
  bool send_probe(std::uint32_t seq, std::uint16_t pad_to_ip_bytes);
  void on_probe_ack(const ReceivedFrame& frame, std::uint64_t now);
  void mtu_search_step(PathMtuSearch::Next next, std::uint64_t now);
  void use_path_mtu(std::uint16_t mtu);
  bool tokens_for(std::size_t bytes, std::uint64_t now);
  void follow_live_rate_cap();
  void send_fin(std::uint64_t now);
  // RESEND: the destination refused these pages; they go again, in full, after this round.
  void take_resend(const ReceivedFrame& frame);
  void start_resend();
  std::uint32_t send_window() const;
  static constexpr std::uint32_t kPostcopyInFlightBytes = 1u << 20;
  void repair_holes(std::uint64_t now);
  rte_mbuf* alloc_frame();
  // A frame of its own (not DATA) on this stream's queue; a full queue is counted here, a
  // missing buffer by alloc_frame().
  template <typename Fill>
  SendResult send_alone(const FrameFields& fields, Fill&& fill, std::uint16_t pad_to_ip_bytes = 0) {
    const SendResult result =
        send_frame(alloc_frame(), queue_.port, queue_.queue, path_, fields, crypto_, fill, pad_to_ip_bytes);
    if (result == SendResult::kQueueFull) ++counters_.tx_queue_full;
    return result;
  }

  std::uint16_t index_;
  QueueRef queue_;
  Path path_;
  std::uint32_t session_;
  std::uint16_t payload_bytes_;  // of frames built now: the current path MTU's
  const std::uint16_t initial_mtu_;  // what the session's probe found; never exceeded

  // Black-hole detection and the MTU search it starts.
  std::uint16_t path_mtu_;
  // The search in progress, and the probes that belong to it: a late answer to an earlier
  // probe at the size being tested counts too.
  std::optional<PathMtuSearch> search_;
  bool search_after_loss_ = false;  // a black hole's, not a raise: it holds the round
  std::uint32_t probe_id_ = 0;             // of the last probe sent
  std::uint16_t probe_size_ = 0;           // what the probes since first_probe_at_size_ test
  std::uint32_t first_probe_at_size_ = 0;
  std::uint64_t probe_sent_tsc_ = 0;
  std::uint64_t raise_due_tsc_ = 0;
  std::vector<std::byte> clear_payload_;  // an encrypted or chained frame's payload, to cut into parts
  StreamTuning tuning_;
  const std::atomic<double>* live_rate_cap_ = nullptr;  // the session's; null: tuning_'s stays
  pagecodec::Encoder encoder_;
  FrameCrypto* crypto_;
  std::uint64_t tsc_hz_;

  // Work of the current round.
  std::span<const std::uint64_t> pages_;
  static constexpr std::size_t kMaxResendPages = 4096;
  std::vector<std::uint64_t> resend_;     // asked for, not yet started
  std::vector<std::uint64_t> resending_;  // what pages_ points into while resending
  PageRequests requests_;                 // postcopy's: serving only after serve_page_requests()
  const pagecodec::PageMap* memory_ = nullptr;  // the session's
  std::uint32_t generation_ = 0;
  bool by_reference_ = false;  // this round's RAW pages go as references into memory_

  pagecodec::RecordStreamWriter staged_;
  std::size_t referenced_bytes_ = 0;  // sent by reference, short of a whole page

  SendWindow<rte_mbuf> window_;
  std::uint32_t peer_window_;   // frames the receiver can hold beyond window_.una()
  RetransmitTimer timer_;

  double tokens_ = 0;
  std::uint64_t tokens_tsc_ = 0;
  std::uint32_t frame_bytes_;  // a full frame on the wire
  PacingController pacing_;
  bool pacing_on_;
  // The adaptive policy's link rate, when it was given none: measured here.
  LinkRateEstimate link_rate_;
  bool measures_link_;
  std::uint64_t acked_bytes_ = 0;  // wire bytes the peer has acknowledged
  bool held_by_path_ = false;      // the last transmit() stopped at the window or rate cap

  bool fin_wanted_ = false;
  bool fin_acked_ = false;
  std::uint64_t fin_sent_tsc_ = 0;
  PollOwner poll_owner_;
  StreamCounters counters_;
  std::unique_ptr<PublishedCounters> published_ = std::make_unique<PublishedCounters>();
  std::unique_ptr<StopReason> destination_abort_ = std::make_unique<StopReason>();
  PublishSchedule publish_schedule_;
};

// Replies to the session's control frames that reach stream 0 after the handshake (a lost
// HELLO_ACK, VERIFY, COMMIT, ABORT); set up by the destination session.
class ControlResponder {
 public:
  virtual ~ControlResponder() = default;
  // kNone when the frame was taken; else why it was dropped (the stream counts it).
  virtual FrameDrop respond(const ReceivedFrame& frame, std::uint64_t now_tsc) = 0;
};

class DestinationStream {
  using Rebuilds = FragmentRebuilds<rte_mbuf>;

 public:
  DestinationStream(std::uint16_t index, QueueRef queue, const Path& path, std::uint32_t session,
                    const StreamTuning& tuning, pagecodec::Decoder decoder, const pagecodec::PageMap* memory,
                    std::uint32_t* page_generations, std::size_t max_record_bytes,
                    ControlResponder* control, std::uint64_t first_page, std::uint64_t end_page,
                    FrameCrypto* crypto, AppliedPagesObserver* applied_pages);
  DestinationStream(DestinationStream&&) noexcept = default;
  ~DestinationStream();

  // One data-path step. Returns false once the FIN was reached and confirmed, or the stream
  // failed.
  bool poll(std::uint64_t now_tsc);

  bool finished() const { return fin_applied_; }
  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }
  const StreamCounters& counters() const { return counters_; }
  // The counters as other threads may read them (telemetry), refreshed every millisecond.
  const PublishedCounters& published() const { return *published_; }
  const pagecodec::Decoder& decoder() const { return decoder_; }
  const PollOwner& poll_owner() const { return poll_owner_; }
  // Answers a PROBE on this stream's queue. The stream does so itself; the session hands it
  // the one it took while accepting (the frame that proved the key).
  void answer_probe(const ReceivedFrame& frame);
  // Postcopy, while the stream is parked: records are decoded into a buffer of the stream's
  // and the AppliedPagesObserver places them (pages_arrived) where the guest waits for them,
  // DELTA and COPY are refused (the guest writes the pages they would build on), and the
  // pages `requests` holds (u64 page numbers, this stream's, put there by the guest's
  // faults) are asked for at once. The session has an observer.
  void begin_postcopy(rte_ring* requests);

 private:
  // Drops, counting and freeing it, a frame or part for `seq` that is old (a duplicate: our
  // ACK may have been lost, so one goes out at once) or beyond the receive window. True if
  // it may be taken.
  bool admit(rte_mbuf* mbuf, std::uint32_t seq, std::uint64_t now);
  // `record_bounds`: kFrameRecordStart, kFrameRecordEnd as the sender flagged the frame.
  void on_data(rte_mbuf* mbuf, PayloadRange payload, std::uint32_t seq, std::uint16_t record_bounds, std::uint64_t now);
  // A part of frame seq (kFrameFragment): copied into that frame's rebuild, which goes to
  // on_data() once every part has come. Takes the mbuf.
  void on_fragment(rte_mbuf* mbuf, const ReceivedFrame& frame, std::uint64_t now);
  // A frame to rebuild `frame`'s parts into, with the part's headers rewritten to describe the
  // whole frame in clear. Null, counted, when there is no room.
  Rebuilds::Rebuild* start_rebuild(const rte_mbuf* part, const ReceivedFrame& frame);
  void deliver(const rte_mbuf* mbuf, PayloadRange payload);
  void feed(pagecodec::RecordStreamReader& reader, const std::byte* bytes, std::size_t length);
  // A frame after a hole: applied now, with the held frames it completes a run of whole
  // records with, unless something in them must wait its turn; false (nothing applied, the
  // caller holds it) then. True: the caller frees `frame`.
  bool apply_ahead(std::uint32_t seq, const rte_mbuf* frame, PayloadRange payload, std::uint16_t record_bounds);
  void process_record(const pagecodec::ParsedRecord& parsed);
  bool apply_record(const pagecodec::RecordView& record);
  bool may_apply(const pagecodec::RecordView& record);  // the ordering rule; counts refusals
  bool may_copy(const pagecodec::RecordView& record, std::uint32_t held_generation);
  pagecodec::DecodeError write_record(const pagecodec::RecordView& record);
  void send_ack(FrameType type = FrameType::kAck);
  // A frame of ours on this stream's queue; false, counted, when it did not go.
  template <typename Fill>
  bool send(const FrameFields& fields, Fill&& fill) {
    const SendResult result =
        send_frame(rte_pktmbuf_alloc(queue_.pool), queue_.port, queue_.queue, path_, fields, crypto_, fill);
    if (result == SendResult::kNoBuffer) ++counters_.mbuf_exhausted;
    if (result == SendResult::kQueueFull) ++counters_.tx_queue_full;
    return result == SendResult::kSent;
  }
  // Pages that must come again in full; asked for with RESEND until they do.
  void refuse(std::uint64_t first_page, std::uint32_t count);
  void send_resend(std::uint64_t now);
  // A RESEND or PAGE_REQUEST listing `pages` (as many as one smallest frame holds).
  bool send_page_list(FrameType type, std::span<const std::uint64_t> pages);
  // Postcopy: takes the guest's new faults off the ring and asks for them (PAGE_REQUEST), and
  // asks again for those still missing every min_rto_us.
  void forward_page_requests(std::uint64_t now);
  void forget_asked(std::uint64_t first_page, std::uint32_t count);
  // Where an out-of-order frame is kept: as it came, or in a frame of the stream's reserve.
  rte_mbuf* keepable(rte_mbuf* mbuf);

  std::uint16_t index_;
  QueueRef queue_;
  Path path_;
  std::uint32_t session_;
  StreamTuning tuning_;
  pagecodec::Decoder decoder_;
  const pagecodec::PageMap* memory_;  // the session's
  std::uint32_t* page_generations_;
  ControlResponder* control_;
  FrameCrypto* crypto_;
  AppliedPagesObserver* applied_pages_;  // null: nobody is told
  // The pages this stream owns: a record for another stream's pages is refused, or two
  // cores would write the same page.
  std::uint64_t first_page_, end_page_;
  std::uint64_t tsc_hz_;

  ReceiveWindow<rte_mbuf> receive_window_;
  // Frames arriving in parts, being rebuilt: few at a time (only frames built before the
  // path's MTU fell are cut).
  Rebuilds rebuilds_;
  pagecodec::RecordStreamReader records_;  // the in-order bytes, into whole records
  pagecodec::RecordStreamReader ahead_records_;  // a frame's applied ahead of a hole

  std::uint32_t unacked_ = 0;
  std::uint64_t ack_due_tsc_ = 0;
  static constexpr std::size_t kMaxRefusedPages = 1024;
  std::vector<std::uint64_t> refused_;
  std::uint64_t resend_due_tsc_ = 0;
  // Postcopy: faults to forward (null before), the pages asked for and not yet applied. Set,
  // records are decoded into bounce_ and placed by the observer (placing()).
  rte_ring* requests_ = nullptr;
  bool placing() const { return requests_ != nullptr; }
  static constexpr std::size_t kMaxAskedPages = 128;
  std::vector<std::uint64_t> asked_;
  std::uint64_t ask_again_tsc_ = 0;
  std::vector<std::byte> bounce_;  // one record's pages, decoded
  std::size_t max_record_bytes_;
  std::uint32_t newest_generation_ = 0;        // of every record applied
  std::uint32_t pre_postcopy_generation_ = 0;  // newest_generation_ when postcopy began
  bool fin_seen_ = false;
  std::uint32_t fin_seq_ = 0;
  bool fin_applied_ = false;
  std::string failure_;
  PollOwner poll_owner_;
  StreamCounters counters_;
  std::unique_ptr<PublishedCounters> published_ = std::make_unique<PublishedCounters>();
  PublishSchedule publish_schedule_;
};

}  // namespace pagewire::transport
