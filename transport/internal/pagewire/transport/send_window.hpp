// The send side of a stream's window as pure logic (no DPDK): the frames built and sent,
// what ACKs report of them (the cumulative ACK and selective blocks: RFC 6675's
// scoreboard), which holes are lost (RACK, RFC 8985), and which frames a timer resends
// first. Sequence numbers, sizes and TSC times in; frames to release or resend out, through
// the caller's callbacks. It holds the caller's items (the stream's frames) by pointer and
// owns none of them.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

#include "pagewire/transport/pacing_controller.hpp"
#include "pagewire/transport/wire.hpp"

namespace pagewire::transport {

template <typename Item>
class SendWindow {
 public:
  struct Entry {
    Item* item = nullptr;           // the caller's, until acknowledged
    std::uint64_t sent_tsc = 0;     // 0: built but not yet transmitted
    std::uint32_t sent_before = 0;  // next() when last sent: frames from there on went later
    std::uint16_t bytes = 0;        // on the wire
    bool retransmitted = false;
    bool sacked = false;
    DeliveryStamp stamp;            // the pacing controller's, from the last transmission
  };
  // What one ACK newly reports.
  struct AckReport {
    std::uint64_t bytes = 0;              // delivered, on the wire
    std::uint64_t youngest_sent_tsc = 0;  // the most recently sent of those frames
    DeliveryStamp youngest;
    // The youngest newly reported frame that times the path (sent once, beyond every earlier
    // report: it has just arrived), or 0: the ACK gives no RTT sample.
    std::uint64_t rtt_sent_tsc = 0;
    bool advanced = false;  // the cumulative ACK moved
  };

  // A hole is lost once a frame sent at least this many frames after it has arrived (RFC
  // 6675's DupThresh, counted in frames since ours go out in order).
  static constexpr std::uint32_t kReorderThreshold = 3;

  // `slots`: rounded up to a power of two; at most slots - 1 frames are outstanding.
  // `first`: the first sequence number (a stream starts at 0; sequence numbers wrap at 2^32).
  explicit SendWindow(std::uint32_t slots, std::uint32_t first = 0)
      : slots_(std::bit_ceil(std::max<std::uint32_t>(slots, 2))),
        una_(first),
        next_(first),
        unsent_(first),
        highest_(first),
        reported_end_(first),
        highest_sacked_(first),
        repair_from_(first) {}

  std::uint32_t una() const { return una_; }        // oldest unacknowledged
  std::uint32_t next() const { return next_; }      // the next to build
  std::uint32_t unsent() const { return unsent_; }  // first built frame not yet transmitted
  std::uint32_t capacity() const { return static_cast<std::uint32_t>(slots_.size()) - 1; }
  std::uint32_t outstanding() const { return next_ - una_; }
  std::uint32_t sacked() const { return sacked_; }
  // Built and not known to have arrived (RFC 6675's pipe); sent_in_flight() leaves out the
  // built frames still waiting to be transmitted.
  std::uint32_t in_flight() const { return next_ - una_ - sacked_; }
  std::uint32_t sent_in_flight() const { return unsent_ - una_ - sacked_; }
  bool all_transmitted() const { return unsent_ == next_; }
  bool empty() const { return una_ == next_; }
  bool holes_waiting() const { return holes_waiting_; }

  // A new frame at next(), built and not yet transmitted.
  Entry& push(Item* item, std::uint16_t bytes) {
    Entry& entry = slot(next_++);
    entry = Entry{};
    entry.item = item;
    entry.bytes = bytes;
    return entry;
  }
  // The first built frame not yet transmitted (unsent() != next()).
  Entry& first_unsent() { return slot(unsent_); }
  // It went out at `now`.
  void transmitted(std::uint64_t now) {
    Entry& entry = slot(unsent_);
    entry.sent_tsc = now;
    entry.sent_before = ++unsent_;
  }

  // The cumulative ACK: every frame before `ack` arrived, and is released. False when `ack`
  // acknowledges what was never sent, or is older than one already seen.
  template <typename Release>
  bool acknowledge(std::uint32_t ack, Release&& release, AckReport* report) {
    if (seq_diff(ack, next_) > 0 || seq_diff(ack, una_) < 0) return false;
    report->advanced = una_ != ack;
    highest_ = ack;
    for (; una_ != ack; ++una_) {
      Entry& entry = slot(una_);
      if (!entry.sacked) note_delivered(entry, una_, report);
      if (entry.item != nullptr) release(entry.item);
      if (entry.sacked) --sacked_;
      entry = Entry{};
    }
    if (seq_diff(unsent_, una_) < 0) unsent_ = una_;
    return true;
  }
  // After acknowledge(): a selective report that `seq` arrived. Frames outside the window,
  // or never transmitted, are ignored (an old or hostile report).
  template <typename Release>
  void selective(std::uint32_t seq, Release&& release, AckReport* report) {
    if (seq_diff(seq, una_) < 0 || seq_diff(seq, next_) >= 0) return;
    Entry& entry = slot(seq);
    if (!entry.sacked && entry.sent_tsc != 0) {
      note_delivered(entry, seq, report);
      release(entry.item);
      entry.item = nullptr;
      entry.sacked = true;
      ++sacked_;
    }
    if (seq_diff(seq, highest_) > 0) highest_ = seq;
  }
  // After the ACK's reports: true when a frame beyond every earlier report arrived, so
  // holes below it may now be lost (repair_holes() looks again from una()).
  bool end_ack() {
    // An ACK after a repair reports the blocks around the hole, below what came before.
    const std::uint32_t reported_end = seq_diff(highest_, una_) > 0 ? highest_ + 1 : una_;
    if (seq_diff(reported_end, reported_end_) > 0) reported_end_ = reported_end;
    if (seq_diff(highest_sacked_, una_) < 0) highest_sacked_ = una_;
    if (seq_diff(highest_, una_) <= 0 || seq_diff(highest_, highest_sacked_) <= 0) return false;
    highest_sacked_ = highest_;
    repair_from_ = una_;
    return true;
  }

  // RACK: resends, through `resend(Entry&)` (false: not sent now, paced or TX full), every
  // hole a frame sent kReorderThreshold frames after it has overtaken and that has been out
  // for longer than `reordering_window`. A retransmitted hole is resent again only once
  // frames sent after the retransmission arrive, so a lost retransmission is found without
  // a timer. The scan resumes where the last stopped (holes_waiting()), each hole looked at
  // once per new frontier.
  template <typename Resend>
  void repair_holes(std::uint64_t now, std::uint64_t reordering_window, Resend&& resend) {
    if (seq_diff(repair_from_, una_) < 0) repair_from_ = una_;
    bool waiting = false;
    std::uint32_t first_waiting = 0;
    std::uint32_t seq = repair_from_;
    for (; seq_diff(seq, highest_sacked_) < 0 && seq_diff(seq, unsent_) < 0; ++seq) {
      Entry& entry = slot(seq);
      if (entry.item == nullptr ||
          seq_diff(highest_sacked_, entry.sent_before) + 1 < static_cast<std::int32_t>(kReorderThreshold)) {
        continue;
      }
      if (now - entry.sent_tsc < reordering_window) {
        if (!waiting) first_waiting = seq;
        waiting = true;
        // Frames sent once go out in order: every later one is younger still, and so is any
        // later retransmission.
        if (!entry.retransmitted) break;
        continue;
      }
      if (!resend(entry)) break;  // paced or TX full: the next call goes on from here
      sent_again(entry, now);
    }
    const bool cut_short = seq_diff(seq, highest_sacked_) < 0 && seq_diff(seq, unsent_) < 0;
    // The next look starts at the first hole still too young, else where this one stopped.
    repair_from_ = waiting ? first_waiting : seq;
    holes_waiting_ = waiting || cut_short;
  }

  // The timer fired: resends, oldest first and at most `most`, the transmitted frames not
  // known to have arrived that have been out for `wait_ticks` or more. Frames go out in
  // order, so the scan stops at the first one not yet due. Returns how many went.
  template <typename Resend>
  std::uint32_t resend_due(std::uint64_t now, std::uint64_t wait_ticks, std::uint32_t most, Resend&& resend) {
    std::uint32_t resent = 0;
    for (std::uint32_t seq = una_; seq_diff(seq, unsent_) < 0 && resent < most; ++seq) {
      Entry& entry = slot(seq);
      if (entry.item == nullptr) continue;
      if (now - entry.sent_tsc < wait_ticks) break;
      if (!resend(entry)) break;
      sent_again(entry, now);
      ++resent;
    }
    return resent;
  }

  // Every frame still held, to be released by the owner (at the end of the stream).
  template <typename Release>
  void release_all(Release&& release) {
    for (Entry& entry : slots_) {
      if (entry.item != nullptr) release(entry.item);
      entry.item = nullptr;
    }
  }

 private:
  Entry& slot(std::uint32_t seq) { return slots_[seq & (slots_.size() - 1)]; }

  // Whether a frame this ACK newly reports times the path: sent once (Karn's rule), and
  // beyond every frame reported before, so it has just arrived. An ACK reports the blocks the
  // receiver touched last, and when a retransmission fills a hole, its block brings along
  // frames that arrived long ago; their age is the repair's, not the path's.
  void note_delivered(const Entry& entry, std::uint32_t seq, AckReport* report) const {
    if (entry.sent_tsc == 0) return;  // built, never sent: nothing to time or count
    if (!entry.retransmitted && seq_diff(seq, reported_end_) >= 0) {
      report->rtt_sent_tsc = std::max(report->rtt_sent_tsc, entry.sent_tsc);
    }
    report->bytes += entry.bytes;
    if (entry.sent_tsc >= report->youngest_sent_tsc) {
      report->youngest_sent_tsc = entry.sent_tsc;
      report->youngest = entry.stamp;
    }
  }
  void sent_again(Entry& entry, std::uint64_t now) {
    entry.sent_tsc = now;
    entry.sent_before = next_;
    entry.retransmitted = true;
  }

  std::vector<Entry> slots_;
  std::uint32_t una_;
  std::uint32_t next_;
  std::uint32_t unsent_;
  std::uint32_t sacked_ = 0;         // frames in [una, next) known to have arrived
  std::uint32_t highest_;            // the highest frame the ACK being read reports
  std::uint32_t reported_end_;       // one past the highest frame any ACK has reported received
  std::uint32_t highest_sacked_;     // the highest frame an ACK reported: holes below it may be lost
  std::uint32_t repair_from_;        // where repair_holes() looks next
  bool holes_waiting_ = false;         // holes below highest_sacked_ not yet resent (too young, or paced)
};

}  // namespace pagewire::transport
