// The source's half of a migration, for an embedder: connect over a Link, then run pre-copy
// and the switchover with the embedder's hooks (hooks.hpp). No DPDK in sight.
//
// Threading: connect() and run() on the embedder's control thread; the hooks are called on
// it too. The stream cores are EAL lcores the Link chose (or the calling thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <string>

#include "pagewire/migration/hooks.hpp"
#include "pagewire/migration/link.hpp"
#include "pagewire/migration/report.hpp"
#include "pagewire/result.hpp"

namespace pagewire::migration {

struct SourceOptions {
  MigrationOptions migration;
  // How pages are encoded: "adaptive" (raw on fast links, deflate where it makes the round
  // finish sooner), "raw", "full", ... (pagecodec::policy_named).
  std::string policy = "adaptive";
  double max_gbps = 0;  // the whole migration's rate cap; 0: none
  std::uint64_t delta_cache_bytes = 64ull << 20;
};

class Source {
 public:
  // `memory` holds guest_pages pages of `page_size` bytes, then state_pages_for(max device
  // state) pages for the device state; it must outlive the Source. Says HELLO to the
  // destination, proves the key, probes the path MTU. kRefused: the destination said no
  // (Error::detail says why); kPeerGone: nobody answered within the link's timeout.
  static Result<Source> connect(Link& link, std::span<std::byte> memory, std::uint64_t guest_pages,
                                std::uint32_t page_size, const SourceOptions& options);
  // The same for a guest whose RAM is several blocks (ram_block.hpp), in the order the
  // destination lists its own; the device state goes in `state_area` (state_pages_for(max
  // device state) pages). The blocks and the area must outlive the Source; the tracker given
  // to run() numbers pages across the blocks, in this order.
  static Result<Source> connect(Link& link, std::span<const RamBlock> ram, std::span<std::byte> state_area,
                                std::uint32_t page_size, const SourceOptions& options);

  Source(Source&& other) noexcept;
  Source& operator=(Source&& other) noexcept;
  ~Source();

  // Pre-copy, switchover, verify, commit (SourceMigration::run: what each outcome means for
  // who owns the guest). `on_round` after each pre-copy round, `on_progress` about every
  // 100 ms; both optional, on this thread.
  Result<MigrationReport> run(GuestControl& guest, DirtyTracker& tracker, std::span<const std::byte> device_state,
                              const std::function<void(const RoundReport&)>& on_round = {},
                              const std::function<void(const RoundProgress&)>& on_progress = {});

  // Any thread, while run() runs or before: run() stops at its next wait and fails with
  // kCancelled, the destination told (ABORT) and the guest running here, as after any
  // failure before the commit. After COMMIT went out it changes nothing: the outcome is the
  // destination's. For SIGINT/SIGTERM: call it from a thread that watches a flag the signal
  // handler sets (it allocates).
  void cancel(std::string_view reason);
  // Any thread, while run() runs or before, as QEMU's migrate-set-parameters: the rate cap
  // for the whole migration (0: none), followed from the stream cores' next poll; and the
  // downtime limit, which decides the next switchover (after the round in progress).
  void set_max_gbps(double gbps);
  double max_gbps() const;
  void set_downtime_limit_ms(std::uint32_t limit_ms);
  std::uint32_t downtime_limit_ms() const;

  std::uint16_t path_mtu() const;
  std::uint16_t streams() const;  // what the handshake settled on
  // The session's id: what query_commit_outcome() asks about after kCommitUnknown.
  std::uint32_t session_id() const;

  struct Parts;  // the transport session, for the CLI (migration/internal/)
  Parts& parts() { return *parts_; }
  const Parts& parts() const { return *parts_; }
  explicit Source(std::unique_ptr<Parts> parts);

 private:
  std::unique_ptr<Parts> parts_;
};

// How a destination says session `session` ended: kCommitted (it owns the guest: keep the
// source's copy stopped), kNotCommitted (resume the source's guest), kPending (it still
// waits for COMMIT), kUnknown (no answer within `timeout_ms`). For a source whose run()
// returned kCommitUnknown, once that Source is destroyed, or from a new process after a
// restart: no Source may be running on `link`. The destination answers while it lingers
// after its commit or refusal (up to 35 s of silence); with a key, only it can answer.
enum class CommitOutcome : std::uint8_t { kUnknown = 0, kCommitted = 1, kNotCommitted = 2, kPending = 3 };
const char* to_string(CommitOutcome outcome);
Result<CommitOutcome> query_commit_outcome(Link& link, std::uint32_t session, std::uint32_t timeout_ms);

}  // namespace pagewire::migration
