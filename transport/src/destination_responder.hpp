// The destination's answers on stream 0 once data flows: HELLO (a lost HELLO_ACK), VERIFY,
// COMMIT, ABORT. Probes each stream answers itself.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "control_channel.hpp"
#include "pagewire/transport/handshake.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::transport {

// Answers what reaches stream 0 for the session once data flows: HELLO (a lost HELLO_ACK),
// VERIFY, COMMIT, ABORT. Probes each stream answers itself.
// Lives on stream 0's core (or the control thread while no stream is polled), and seals
// with stream 0's FrameCrypto, which belongs to the same queue.
class DestinationSession::Responder final : public ControlResponder {
 public:
  Responder(QueueRef queue, const Path& path, std::uint32_t session, std::vector<std::byte> hello_ack,
            FrameCrypto* crypto, const PreSharedKey* key)
      : queue_(queue), path_(path), session_(session), hello_ack_(std::move(hello_ack)), crypto_(crypto), key_(key) {}

  // A VERIFY that came before this is answered now: the source is paused waiting for it.
  void set_verification(const Digest& digest, std::uint64_t region_bytes) {
    std::memcpy(verify_.digest, digest.data(), digest.size());
    verify_.region_bytes.set(region_bytes);
    can_verify_ = true;
    if (early_verify_seq_ != 0) send_verify_reply(early_verify_seq_);
  }
  // The source sent COMMIT; it is acknowledged only once acknowledge() is called.
  bool commit_requested() const { return commit_requested_; }
  // Control thread, while no stream core runs: the commit action is done.
  void acknowledge() {
    commit_acknowledged_ = true;
    send_commit_ack(commit_seq_);
  }
  // Any thread: the source aborted. The reason (aborted()) is written once, before this.
  bool was_aborted() const { return was_aborted_.load(std::memory_order_acquire); }
  const std::string& aborted() const { return aborted_; }
  void send_hello_ack() {
    send_control(queue_, path_, FrameFields{.type = FrameType::kHelloAck, .stream = 0, .session = session_},
                 hello_ack_.data(), static_cast<std::uint16_t>(hello_ack_.size()), nullptr);
  }

  // Any thread: the source asked to switch to postcopy and has had no answer yet.
  bool postcopy_pending() const { return postcopy_asked_.load(std::memory_order_acquire) && !postcopy_answered_; }
  // Control thread, while no stream core runs: the guest runs here now (or could not, and
  // why). Said again to every repeat of the request.
  void answer_postcopy(bool running, const std::string& reason) {
    postcopy_answer_.answer = running ? kPostcopyRunning : kPostcopyRefused;
    const std::size_t length = std::min(reason.size(), sizeof postcopy_answer_.reason - 1);
    std::memcpy(postcopy_answer_.reason, reason.data(), length);
    postcopy_answer_.reason[length] = '\0';
    postcopy_answered_ = true;
    send_postcopy_answer(postcopy_seq_);
  }

  // Before the streams run: an ABORT that starts with `nonce` has it taken off its reason.
  void strip_from_abort(const Nonce& nonce) { echo_ = nonce; }

  // Any thread: the source said the answer to its COMMIT arrived.
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  // Any thread: control frames the source sent, a sign of life while no data flows.
  std::uint64_t frames_heard() const { return frames_heard_.load(std::memory_order_relaxed); }

  FrameDrop respond(const ReceivedFrame& frame, std::uint64_t now) override {
    frames_heard_.store(frames_heard_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (frame.type == FrameType::kClose) {
      closed_.store(true, std::memory_order_release);
    } else if (frame.type == FrameType::kVerify) {
      if (can_verify_) send_verify_reply(frame.seq);
      else early_verify_seq_ = frame.seq;
    } else if (frame.type == FrameType::kAbort) {
      if (was_aborted()) return FrameDrop::kOutOfTurn;  // the source says it three times; the first is kept
      aborted_ = "the source aborted the migration: " +
                 abort_reason(frame.payload, frame.payload_bytes, echo_ ? &*echo_ : nullptr);
      was_aborted_.store(true, std::memory_order_release);
    } else if (frame.type == FrameType::kCommit) {
      if (!can_verify_) return FrameDrop::kOutOfTurn;  // nothing verified yet: the source asks again
      commit_requested_ = true;
      commit_seq_ = frame.seq;
      // Our answer was lost: the source asks again, and gets the same one.
      if (commit_acknowledged_) send_commit_ack(frame.seq);
      if (!refusal_.empty()) send_refusal(frame.seq);
    } else if (frame.type == FrameType::kPostcopy) {
      postcopy_seq_ = frame.seq;
      if (postcopy_answered_) send_postcopy_answer(frame.seq);  // our answer was lost
      else postcopy_asked_.store(true, std::memory_order_release);
    } else if (frame.type == FrameType::kOutcomeQuery) {
      return answer_outcome_query(frame, now);
    } else if (frame.type == FrameType::kHello) {
      send_hello_ack();
    } else {
      return taken_by_destination(frame.type) ? FrameDrop::kOutOfTurn : FrameDrop::kWrongDirection;
    }
    return FrameDrop::kNone;
  }

  // Control thread, while no stream core runs: this end gives up (cancelled). ABORT three
  // times, unanswered, as the source's own.
  void abort(const std::string& reason) {
    gave_up_ = true;
    const std::string text = reason.substr(0, 200);
    for (int i = 0; i < 3; ++i) {
      send_control(queue_, path_, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = session_},
                   text.data(), static_cast<std::uint16_t>(text.size()), crypto_);
    }
  }

  // Control thread, while no stream core runs: ABORT in answer to the COMMIT, three times
  // as the source's own abort (a lost one is covered by the others).
  void refuse(const std::string& reason) {
    refusal_ = reason.substr(0, 200);
    for (int i = 0; i < 3; ++i) send_refusal(commit_seq_);
  }

 private:
  // How this session stands, to whoever proves they may ask (the key, with one): the source
  // after a lost COMMIT_ACK, or after a restart. Answered unsealed, with its own proof. At
  // most one a millisecond, checked before the proof: a flood of queries (each an HMAC and
  // a frame on stream 0's core) costs the data path next to nothing; a source asks every
  // 200 ms.
  FrameDrop answer_outcome_query(const ReceivedFrame& frame, std::uint64_t now) {
    if (now < next_query_tsc_) return FrameDrop::kQueryLimited;
    if (frame.payload_bytes < sizeof(OutcomeQueryPayload)) return FrameDrop::kTruncated;
    next_query_tsc_ = now + rte_get_tsc_hz() / 1000;
    OutcomeQueryPayload query;
    std::memcpy(&query, frame.payload, sizeof query);
    if (!outcome_query_valid(key_, session_, query)) return FrameDrop::kBadTag;
    const OutcomePayload answer = make_outcome(key_, session_, query, outcome());
    send_control(queue_, path_, FrameFields{.type = FrameType::kOutcome, .stream = 0, .session = session_, .seq = frame.seq},
                 &answer, sizeof answer, nullptr);
    return FrameDrop::kNone;
  }
  CommitOutcome outcome() const {
    if (commit_acknowledged_) return CommitOutcome::kCommitted;
    if (!refusal_.empty() || was_aborted() || gave_up_) return CommitOutcome::kNotCommitted;
    return CommitOutcome::kPending;
  }
  void send_refusal(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kAbort, .stream = 0, .session = session_, .seq = seq},
                 refusal_.data(), static_cast<std::uint16_t>(refusal_.size()), crypto_);
  }
  void send_commit_ack(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kCommitAck, .stream = 0, .session = session_, .seq = seq},
                 nullptr, 0, crypto_);
  }
  void send_postcopy_answer(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kPostcopyAck, .stream = 0, .session = session_, .seq = seq},
                 &postcopy_answer_, sizeof postcopy_answer_, crypto_);
  }
  void send_verify_reply(std::uint32_t seq) {
    send_control(queue_, path_, FrameFields{.type = FrameType::kVerifyReply, .stream = 0, .session = session_, .seq = seq},
                 &verify_, sizeof verify_, crypto_);
  }

  QueueRef queue_;
  Path path_;
  std::uint32_t session_;
  std::vector<std::byte> hello_ack_;  // HelloPayload, then HelloAuth if authenticated
  FrameCrypto* crypto_;
  const PreSharedKey* key_;     // the session's, or null: what an outcome query must prove
  bool gave_up_ = false;        // abort() was called: this end discards its image
  std::uint64_t next_query_tsc_ = 0;  // outcome queries before this go unanswered
  std::optional<Nonce> echo_;  // keyless: our nonce, which a handshake's ABORT starts with
  VerifyPayload verify_{};
  std::uint32_t early_verify_seq_ = 0;
  bool can_verify_ = false;
  bool commit_requested_ = false;
  bool commit_acknowledged_ = false;
  std::string refusal_;  // the commit was refused, and why: repeated to a repeated COMMIT
  std::uint32_t commit_seq_ = 0;
  std::atomic<bool> postcopy_asked_{false};  // written on stream 0's core
  bool postcopy_answered_ = false;
  std::uint32_t postcopy_seq_ = 0;
  PostcopyAnswerPayload postcopy_answer_{};
  std::string aborted_;
  std::atomic<bool> was_aborted_{false};
  std::atomic<bool> closed_{false};
  std::atomic<std::uint64_t> frames_heard_{0};  // written on stream 0's core only
};

}  // namespace pagewire::transport
