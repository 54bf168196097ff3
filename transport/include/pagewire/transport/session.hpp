// A migration session between a source and a destination port: handshake (version and
// capabilities, refused on both sides with what differs), path-MTU probing, then N streams
// that carry rounds of pages.
//
// This is the API the control tool and a hypervisor prototype use.
//
// Threading. Every method belongs to the one control thread that made the session, except
// poll(s), published_totals() and the destination's page_generation()/forget_page().
// - With SessionConfig::stream_lcores (the default of the CLI), each stream runs on an EAL
//   lcore of its own (StreamRunner): run_until_idle(), keep_alive_while(), verify(),
//   commit(), abort(), run_until_finished(), await_commit(), linger() and
//   linger_until_closed() hand their work
//   to the stream cores and wait for it; the control thread never polls a stream, and
//   only touches one (begin_round(), totals()) while every core is parked. Control frames
//   go out on queue 0 from stream 0's core.
// - Without: those methods poll every stream from the calling thread, or an embedder with
//   threads of its own calls poll(s) from the one thread that owns stream s and calls the
//   control methods only while no stream is being polled.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/pagecodec/page_map.hpp"
#include "pagewire/pagecodec/policy.hpp"
#include "pagewire/result.hpp"
#include "pagewire/transport/applied_pages.hpp"
#include "pagewire/transport/port.hpp"
#include "pagewire/transport/pre_shared_key.hpp"
#include "pagewire/transport/path.hpp"
#include "pagewire/transport/queue_ref.hpp"
#include "pagewire/transport/stream_counters.hpp"
#include "pagewire/transport/stream_tuning.hpp"
#include "pagewire/transport/stop_reason.hpp"
#include "pagewire/transport/stream_runner.hpp"
#include "pagewire/transport/telemetry.hpp"

struct rte_ring;

namespace pagewire::transport {

// The protocol's own types (internal/): a session holds its streams and their keys, and
// only its own code reaches into them.
class WindowGrowth;
class SourceStream;
class DestinationStream;
class FrameCrypto;
enum class FrameType : std::uint8_t;

struct SessionSecurity {
  // Set: the peer must prove the same key in the handshake, and every frame after it is
  // sealed (AES-256-GCM: authenticated, replays dropped). Both sides or neither.
  std::optional<PreSharedKey> key;
  // Source: encrypt every frame's payload too. Destination: refuse a source that does not.
  bool encrypt = false;
};

// The UDP checksum of every frame. kAuto leaves it out on memory links (Port::memory_link():
// nothing on the way can corrupt a frame, it would cost a pass over every byte at both
// ends, and the region digest checks the result) and has the port compute and check it
// where it can (Port::tx_checksum_offload()); elsewhere it is summed in software. kOn
// keeps it everywhere (a memory link that stands for a network, as a test middlebox does).
// The record CRC32C (pagecodec::Policy::crc) covers pages end to end either way.
enum class UdpChecksum : std::uint8_t { kAuto, kOn, kOff };

struct SessionConfig {
  // Asked for. A session runs the smallest of this, the port's queue pairs and the peer's
  // offer (the handshake settles it; streams() and streams_note() say what it runs). Rates
  // in `tuning` and `policy` are per stream, for this count: over fewer streams they are
  // scaled up to the same totals.
  std::uint16_t streams = 1;
  std::uint32_t page_size = 4096;
  std::uint64_t region_pages = 0;
  // path.udp_checksum and path.tx_checksum_offload are set from `udp_checksum` and the port.
  // path.peer.mac all zero: the source resolves it with ARP (of next_hop_ip, or of the peer
  // when that is 0); the destination answers to the MAC its HELLO came from.
  Path path;
  std::uint32_t next_hop_ip = 0;  // the router towards the peer; 0: the peer is on this link
  UdpChecksum udp_checksum = UdpChecksum::kAuto;
  // The memory link stands for a network (a test middlebox between net_ring ports): the
  // automatic choices of checksums and congestion control are made as on a network.
  bool emulated_network = false;
  StreamTuning tuning;
  pagecodec::Policy policy;
  std::uint64_t delta_cache_bytes = 64ull << 20;  // split evenly between the streams
  std::uint32_t hello_timeout_ms = 5000;
  // A peer that acknowledges nothing (source) or sends nothing (destination) for this long
  // is gone: the session fails instead of waiting for its overall timeout.
  std::uint32_t peer_timeout_ms = 5000;
  // An outage ridden out instead of ending the session, while nothing is lost by waiting:
  // a source whose guest runs (SourceSession::set_guest_running) waits this long for a
  // silent destination, its streams resending at most max_rto_us apart, and a receiving
  // destination (which cannot tell the phases apart) waits as long for a silent source.
  // When the path returns the session goes on where it stopped: both ends kept their state,
  // and frames sealed with the session's keys (or bearing its id, without a key) are the
  // proof that it is the same session. With the guest paused, peer_timeout_ms still
  // decides. 0 (or at most peer_timeout_ms): no outage is ridden out.
  std::uint32_t resume_window_ms = 0;
  // Destination: after answering COMMIT, how long a silent source may still come back and
  // ask again before the destination stops answering (it stops at once on CLOSE). Longer
  // than the source's commit window (MigrationOptions::commit_timeout_ms, 30 s), so that a
  // source still asking is always answered.
  std::uint32_t commit_linger_ms = 35000;
  std::uint32_t probe_timeout_ms = 30;
  std::uint32_t probe_tries = 3;
  SessionSecurity security;
  // EAL worker lcores, stream s on stream_lcores[s] (the first streams() of them are used):
  // each stream is polled by its own core. Empty: the calling thread polls (see Threading).
  std::vector<unsigned> stream_lcores;
  StreamRunnerOptions runner;
  // Destination: told of every page a stream writes, on that stream's core (null: nobody).
  // It must outlive the session.
  AppliedPagesObserver* applied_pages = nullptr;
  // Set from any thread to give up: connect() or accept() ends at its next wait (within
  // about 200 ms) with kCancelled, telling a peer that already answered (ABORT), and a
  // session it started is cancelled with it (cancel() sets it too). It must outlive the
  // session. Null: only cancel() stops a session, and a handshake runs to its end.
  StopReason* cancel = nullptr;
};

// The stream that carries `page`: contiguous ranges, so each stream's pages (and its delta
// cache and the destination's generation entries) stay together. page * streams cannot
// overflow: regions are below 2^47 pages (kMaxRegionPages) and streams below 2^16.
inline constexpr std::uint64_t kMaxRegionPages = std::uint64_t{1} << 47;
inline std::uint16_t stream_of_page(std::uint64_t page, std::uint64_t region_pages, std::uint16_t streams) {
  return static_cast<std::uint16_t>(page * streams / region_pages);
}
// The first page stream_of_page() gives to `stream`; stream s owns [first(s), first(s + 1)).
inline std::uint64_t first_page_of_stream(std::uint16_t stream, std::uint64_t region_pages, std::uint16_t streams) {
  return (stream * region_pages + streams - 1) / streams;
}

using Digest = std::array<std::uint8_t, 16>;

// Sets path.udp_checksum and path.tx_checksum_offload for `port` as `config` asks.
void apply_udp_checksum(const SessionConfig& config, const Port& port, Path* path);
// How a session with this path checks frames: "off", "offloaded" (by the port) or "software".
const char* checksum_note(const Path& path);

struct SessionTotals {
  StreamCounters streams;               // summed over streams
  pagecodec::EncoderCounters encoded;   // source side
  pagecodec::DeltaCacheCounters delta_cache;  // source side
  pagecodec::DuplicateCounters duplicates;    // source side
  pagecodec::DecoderCounters decoded;   // destination side
};

// The silences a session lived through: how many outlasted peer_timeout_ms and ended with
// the peer heard again (outages ridden out), and the longest, in TSC cycles.
struct OutageLog {
  std::uint32_t ridden = 0;
  std::uint64_t longest_tsc = 0;
};

class SourceSession {
 public:
  // Handshake and path-MTU probe on queue 0 of `port`. `memory` (config.region_pages pages;
  // the session keeps a copy of the map) must stay valid and may be
  // written by the guest throughout.
  static Result<std::unique_ptr<SourceSession>> connect(const SessionConfig& config, const Port& port,
                                                        const pagecodec::PageMap& memory);

  std::uint16_t path_mtu() const { return path_mtu_; }
  std::uint16_t streams() const;
  // The id both ends know the session by (in every frame): what query_outcome() asks about.
  std::uint32_t session_id() const { return session_; }
  // Why it runs fewer streams than SessionConfig::streams asked for; empty if it runs all.
  const std::string& streams_note() const { return streams_note_; }

  // Splits `pages` (ascending) between the streams for the next round. kStable: the guest
  // cannot write these pages until the round is over (paused for the switchover, or the
  // hypervisor write-protects them), so RAW pages may go by reference (zero-copy).
  enum class RoundPages : std::uint8_t { kMayChange, kStable };
  // Pages the last round sent as a COPY of a page in `dirty` (ascending), appended to
  // `pages`: the receiver holds what that page held when it was sent, and the guest has since
  // written it, so they must go again. Call between rounds, before begin_round(), with the
  // dirty log of the round; a caller that sends COPYs (policy.duplicates) must, or those pages
  // may stay stale. Control thread, every stream core parked.
  void append_copies_of(std::span<const std::uint64_t> dirty, std::vector<std::uint64_t>* pages) const;
  void begin_round(std::span<const std::uint64_t> pages, std::uint32_t generation,
                   RoundPages kind = RoundPages::kMayChange);
  void begin_finish();
  // One step of stream `s`, from the thread that owns it (no runner); true while it has work.
  bool poll(std::uint16_t s, std::uint64_t now_tsc);

  // Runs every stream until all are idle, or fails after `timeout_ms` without progress
  // being completed. `tick`, if given, is called about every 100 ms from the calling thread
  // (a progress display; keep it short).
  Status run_until_idle(std::uint32_t timeout_ms, const std::function<void()>& tick = {});
  // Between rounds, while `busy()` is true (the caller's own work, such as rehashing or
  // syncing the dirty log, running on another thread): sends a keepalive every quarter of
  // peer_timeout_ms, so the destination does not take a source that works for longer than
  // that for gone, and polls the streams for late ACKs. Sleeps 1 ms between looks.
  void keep_alive_while(const std::function<bool()>& busy);

  // After the FIN round: asks the destination for the digest of its region.
  Result<Digest> verify(std::uint32_t timeout_ms);
  // The digests matched: tells the destination to keep its image. Ok once the destination
  // acknowledged, which it does only after its commit action (output written, guest
  // started). kCommitRefused: the destination said it cannot take the guest. kCommitUnknown:
  // no answer within `timeout_ms`, so whether it took the guest is not known here.
  Status commit(std::uint32_t timeout_ms);
  // Tells the destination, best effort, that the migration failed and why, so that it
  // discards its image at once instead of waiting for its timeout.
  void abort(const std::string& reason);

  // Postcopy. After a round whose every frame was acknowledged (the device state, and the
  // list of pages the destination lacks), with the guest paused, and begin_postcopy_round():
  // asks the destination to run the guest (whose first page requests may come before its
  // answer). Ok: it runs there now, and the source's copy must never run again.
  // kCommitRefused: it could not (why is in the message); the source may resume its own.
  // kCommitUnknown: no answer within `timeout_ms`: it may run there; keep the guest paused.
  Status switch_to_postcopy(std::uint32_t timeout_ms);
  // Before switch_to_postcopy(): the pages the destination lacks (ascending) as one round
  // (kStable: the guest stays paused here), in which pages its guest touches and asks for
  // (PAGE_REQUEST) go first, and every page goes whole (no DELTA, no COPY: the destination's
  // guest writes what they would build on). run_until_idle() then, as for any round.
  void begin_postcopy_round(std::span<const std::uint64_t> pages, std::uint32_t generation);
  // Any thread, any time: ends the wait in progress or the next one (a round, keepalives,
  // VERIFY) with kCancelled, and the caller then aborts. A COMMIT already sent is seen
  // through: its outcome is the destination's to decide. The first reason stands.
  void cancel(std::string_view reason) { cancelled_->set(reason); }
  // Control thread, between rounds: whether the guest runs (pre-copy) or is paused (the
  // switchover). While it runs, a silent destination is waited for up to resume_window_ms.
  void set_guest_running(bool running) { guest_running_ = running; }
  // Silences longer than peer_timeout_ms that ended with the destination heard again, and
  // the longest silence, in ms. Control thread.
  std::uint32_t outages_ridden() const { return outages_.ridden; }
  double longest_silence_ms() const;
  // Any thread, any time: caps the session at `bytes_per_second` (0: no cap) from the
  // streams' next poll on, shared evenly between them (QEMU's migrate-set-parameters
  // max-bandwidth). No lock: each stream reads the cap once per poll.
  void set_rate_cap(double bytes_per_second);
  double rate_cap() const;

  // Exact, from the streams' own counters: control thread, while no stream core runs.
  SessionTotals totals() const;
  // Any thread, any time: the counters the streams published (at most a millisecond old;
  // the encoder's are those of pages by encoding only).
  SessionTotals published_totals() const;
  // Stream `s`'s counters as published (any thread), and whether its congestion control runs.
  const PublishedCounters& published(std::uint16_t s) const;
  bool congestion_controlled() const;
  const SourceStream& stream(std::uint16_t s) const;  // internal/stream.hpp: for tools that take it apart
  // The EAL lcore that runs stream `s`; LCORE_ID_ANY without a runner.
  unsigned stream_lcore(std::uint16_t s) const;
  // Whether stable rounds send RAW pages by reference, and if not, why.
  bool zero_copy() const { return zero_copy_; }
  const std::string& zero_copy_note() const { return zero_copy_note_; }
  // Why a stream's window stopped growing short of the path's need (memory); empty if none.
  const std::string& window_note() const;
  // How frames are checked on the way: "off", "offloaded" or "software".
  const char* udp_checksum_note() const { return checksum_note(config_.path); }
  ~SourceSession();

 private:
  SourceSession();
  template <typename Handle>
  bool exchange(FrameType request, std::uint32_t timeout_ms, Handle&& handle);
  // Runs `work` where queue 0 may be used: on stream 0's core, or here without a runner.
  void on_control_queue(const std::function<void()>& work);
  Status poll_here_until_idle(std::uint32_t timeout_ms, const std::function<void()>& tick);
  Status await_stream_cores(std::uint32_t timeout_ms, const std::function<void()>& tick);
  Status silent_destination() const;
  void choose_zero_copy(const Port& port);
  void close();
  // Why a wait must end early: cancelled here, or the destination aborted. Ok: neither.
  Status stopped() const;
  Status start_streams(const Port& port);
  FrameCrypto* crypto(std::uint16_t s) { return crypto_.empty() ? nullptr : crypto_[s].get(); }
  QueueRef control_{};
  std::uint32_t session_ = 0;
  SessionConfig config_;
  pagecodec::PageMap memory_;  // the streams point at it
  std::uint16_t path_mtu_ = 0;
  StreamCounters control_counters_;  // frames refused during handshake and probing
  std::unique_ptr<WindowGrowth> windows_;
  std::vector<std::unique_ptr<FrameCrypto>> crypto_;  // per stream (queue); empty without a key
  std::vector<SourceStream> streams_;
  std::vector<std::vector<std::uint64_t>> round_pages_;
  mutable std::vector<std::uint64_t> dirty_bits_;  // append_copies_of()'s, zero between calls
  bool zero_copy_ = false;
  bool guest_running_ = false;
  OutageLog outages_;
  std::string zero_copy_note_ = "on";
  StopReason own_cancel_;
  StopReason* cancelled_ = &own_cancel_;  // SessionConfig::cancel when given
  std::atomic<double> rate_cap_per_stream_{0};  // what every stream follows (set_rate_cap)
  std::string streams_note_;
  const Port* dma_port_ = nullptr;  // mapped the region for zero-copy: unmapped when the session ends
  std::unique_ptr<StreamRunner> runner_;  // null: the calling thread polls
  std::unique_ptr<TelemetryRegistration> telemetry_;  // declared last: leaves telemetry first
};

class DestinationSession {
 public:
  // Waits for a HELLO on queue 0, checks it against `config`, answers HELLO_ACK or REFUSE.
  static Result<std::unique_ptr<DestinationSession>> accept(const SessionConfig& config, const Port& port,
                                                            const pagecodec::PageMap& memory);

  ~DestinationSession();

  // One step of stream `s`, from the thread that owns it (no runner).
  bool poll(std::uint16_t s, std::uint64_t now_tsc);
  std::uint16_t streams() const;
  // Why it runs fewer streams than SessionConfig::streams asked for; empty if it runs all.
  const std::string& streams_note() const { return streams_note_; }
  // Runs every stream until all have reached their FIN, one fails, the source aborts, the
  // source asks to switch to postcopy (Ok, with postcopy_requested() true), or it
  // sends nothing for peer_timeout_ms. There is no overall limit: how long a migration may
  // take is the source's call (a large guest's first round alone can take minutes), and a
  // total here would cut off migrations the source still allows. Returns at once: the
  // caller goes on polling, in await_commit() or linger().
  Status run_until_finished();
  // TIME-WAIT after run_until_finished() when no commit follows: our FIN_ACK may be lost and
  // the source then repeats its FIN, so answer until the line has been quiet for 100 ms
  // (2 s at most).
  void linger();
  // TIME-WAIT after acknowledge_commit() or refuse_commit(): the source repeats COMMIT until
  // an answer reaches it, through a path that may go dark for a while, so answer until it
  // says it heard (CLOSE) or has sent nothing for commit_linger_ms.
  void linger_until_closed();

  bool finished() const;

  // Postcopy. The source asked to switch (run_until_finished() returned for it): its guest is
  // paused, and every page it sent so far is applied here, the device state and the list of
  // pages this end lacks among them. Then: begin_postcopy(), run the guest (its missing pages
  // fault and are asked for with request_page()), answer_postcopy(), and
  // run_until_finished() again for the rest, then await_commit() as after pre-copy.
  bool postcopy_requested() const;
  // From now on pages that arrive are handed to the AppliedPagesObserver to place
  // (pages_arrived), not written to the region, and DELTA and COPY are refused. Control
  // thread; the session must have an observer.
  Status begin_postcopy();
  // Tells the source the guest runs here (running), or that it could not and why: the
  // source then resumes its own. Control thread, after begin_postcopy().
  void answer_postcopy(bool running, const std::string& reason = {});
  // Any thread (the guest's fault handlers), after begin_postcopy(): asks the source for
  // `page` ahead of the rest. False: not a page the source sends, or the
  // stream's queue of requests is full (the page still comes with the rest).
  bool request_page(std::uint64_t page);

  // After run_until_finished: answers VERIFY with `digest` (and late FINs and probes) until
  // the source sends COMMIT, or fails after `timeout_ms`: then the image must be discarded.
  // The COMMIT is not acknowledged yet: do what committing means (write the image, start
  // the guest), then acknowledge_commit() or refuse_commit(), then linger_until_closed().
  Status await_commit(const Digest& digest, std::uint64_t region_bytes, std::uint32_t timeout_ms);
  // Any thread, any time: ends run_until_finished() or await_commit() (in progress or next)
  // with kCancelled, after telling the source (ABORT with the reason), which then fails at
  // once with its guest running. Once the commit was acknowledged it only ends the
  // TIME-WAIT. The first reason stands.
  void cancel(std::string_view reason) { cancelled_->set(reason); }
  // After await_commit() succeeded: the image is ours. Acknowledges the COMMIT (and every
  // repeat of it linger_until_closed() sees). From here the source reports success.
  void acknowledge_commit();
  // After await_commit() succeeded, when the commit action failed: tells the source, which
  // resumes its guest, and (in linger_until_closed(), to be called next) tells it again should it ask
  // again. The image must be discarded.
  void refuse_commit(const std::string& reason);
  // As SourceSession's: exact while no stream core runs; published from any thread.
  SessionTotals totals() const;
  SessionTotals published_totals() const;
  const PublishedCounters& published(std::uint16_t s) const;  // as SourceSession's
  const DestinationStream& stream(std::uint16_t s) const;  // internal/stream.hpp: for tools that take it apart
  unsigned stream_lcore(std::uint16_t s) const;  // LCORE_ID_ANY without a runner
  // Generation last applied to `page` (0: never received, or unusable). Any thread may
  // read it while the streams run: the page's bytes are written before its generation
  // (release/acquire), so a reader that sees a generation change and then reads the page
  // sees at least that version, and any later write changes the generation again.
  std::uint32_t page_generation(std::uint64_t page) const {
    return std::atomic_ref(const_cast<std::uint32_t&>(generations_[page])).load(std::memory_order_acquire);
  }
  std::uint64_t region_pages() const { return generations_.size(); }
  const char* udp_checksum_note() const { return checksum_note(config_.path); }
  const std::string& window_note() const;  // as SourceSession's
  std::uint32_t outages_ridden() const { return outages_.ridden; }  // as SourceSession's
  double longest_silence_ms() const;
  // The page no longer holds a version the source could build on (the hypervisor discarded
  // or reused it): its next DELTA is refused and the page asked for again in full (RESEND).
  // Any thread, while the streams run.
  void forget_page(std::uint64_t page) {
    if (page < generations_.size()) std::atomic_ref(generations_[page]).store(0, std::memory_order_relaxed);
  }

  class Responder;

 private:
  DestinationSession();
  Status run_stream_cores_until_finished();
  Status start_streams(const Port& port, std::uint64_t source_pages);
  // Cancelled: the source is told (ABORT), and the error to return. Ok: not cancelled.
  // Control thread, with no stream core running.
  Status abort_if_cancelled();
  Status failed_stream() const;  // the first stream that failed, if one has
  FrameCrypto* crypto(std::uint16_t s) { return crypto_.empty() ? nullptr : crypto_[s].get(); }
  SessionConfig config_;
  std::uint16_t port_ = 0;
  std::uint32_t session_ = 0;
  std::string streams_note_;
  StreamCounters control_counters_;  // frames refused while waiting for HELLO
  OutageLog outages_;
  StopReason own_cancel_;
  StopReason* cancelled_ = &own_cancel_;  // SessionConfig::cancel when given
  std::unique_ptr<WindowGrowth> windows_;
  pagecodec::PageMap memory_;  // the streams point at it
  std::uint64_t source_pages_ = 0;  // how the source splits its pages between the streams
  std::vector<rte_ring*> page_requests_;  // postcopy: per stream, the guest's faults (MP/SC)
  std::vector<std::uint32_t> generations_;
  std::vector<std::unique_ptr<FrameCrypto>> crypto_;  // per stream (queue); empty without a key
  std::unique_ptr<Responder> responder_;
  std::vector<DestinationStream> streams_;
  std::unique_ptr<StreamRunner> runner_;  // null: the calling thread polls
  std::unique_ptr<TelemetryRegistration> telemetry_;  // declared last: leaves telemetry first
};

}  // namespace pagewire::transport
