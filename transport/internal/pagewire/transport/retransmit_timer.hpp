// When a source stream resends by timer, as pure logic (no DPDK): RFC 6298's smoothed RTT
// and retransmission timeout with its back-off, RFC 8985's tail-loss probe, and how many
// timers fired in a row with nothing acknowledged (a dead peer, or a path that now drops
// frames of our size). Times are TSC ticks; the stream feeds it samples and verdicts and
// asks it how long its oldest outstanding frame may wait.
#pragma once

#include <cstdint>

namespace pagewire::transport {

class RetransmitTimer {
 public:
  struct Limits {
    std::uint64_t initial = 0;    // the RTO before any sample
    std::uint64_t floor = 0;      // never shorter (SACK finds losses; the timer is for the tail)
    std::uint64_t ceiling = 0;    // never longer, however far it backed off
    std::uint64_t ack_delay = 0;  // how long the receiver may hold an ACK back
  };
  // What the oldest outstanding frame may wait before it is resent, and whether that resend
  // is a tail-loss probe (one frame) rather than a timeout (a burst, and a back-off).
  struct Wait {
    std::uint64_t ticks;
    bool probe;
  };

  explicit RetransmitTimer(Limits limits);

  // An ACK arrived: `rtt` is its sample (0: none, Karn's rule), `progress` whether the
  // cumulative ACK moved. A sample or progress sets the RTO from the estimate again, which
  // undoes any back-off; progress also answers an outstanding probe and ends a run of
  // timers.
  void on_ack(std::uint64_t rtt, bool progress);
  // The RTO from the estimate again, without a sample (the path changed under us).
  void restart();
  // With everything sent (`all_sent`) no later frame can reveal a tail loss by SACK, so a
  // probe fires after 2 SRTT and the ACK delay when that is sooner than the RTO; once a probe
  // went unanswered, only the RTO, so a silent peer sees resends further and further apart.
  Wait wait(bool all_sent) const;
  // The timer fired and frames were resent: a timeout doubles the RTO (up to the ceiling),
  // a probe arms the RTO for next time.
  void on_fired(bool probe);

  std::uint64_t srtt() const { return srtt_; }
  std::uint64_t rttvar() const { return rttvar_; }
  std::uint64_t rto() const { return rto_; }
  // Timers (probes and timeouts) fired since the cumulative ACK last moved.
  std::uint32_t fired_without_progress() const { return fired_without_progress_; }

 private:
  Limits limits_;
  std::uint64_t srtt_ = 0;
  std::uint64_t rttvar_ = 0;
  std::uint64_t rto_;
  bool probe_unanswered_ = false;
  std::uint32_t fired_without_progress_ = 0;
};

}  // namespace pagewire::transport
