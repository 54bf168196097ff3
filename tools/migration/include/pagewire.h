/* pagewire's C interface: live migration of a guest's memory over a kernel-bypass link, for
 * C hypervisors and for other languages (Rust through bindgen). The same library as the
 * C++ API (pagewire/pagewire.hpp), behind opaque handles. docs/embedding.md explains the
 * model; docs/examples/embed_minimal.c uses every call.
 *
 * Conventions: every call that can fail returns a pagewire_status (PAGEWIRE_OK, or the
 * kind of failure) and, when `error` is not NULL, fills it with the code, a detail and a
 * message a user can act on. Handles belong to the thread that made them; the callbacks
 * run on that thread, never on a stream core. Callbacks return 0 for success. */
#ifndef PAGEWIRE_H
#define PAGEWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "pagewire/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The same numbers as pagewire::ErrorCode (result.hpp). */
typedef enum pagewire_status {
  PAGEWIRE_OK = 0,
  PAGEWIRE_ERR_FAILED = 1,
  PAGEWIRE_ERR_CONFIGURATION = 2,
  PAGEWIRE_ERR_REFUSED = 3,        /* detail: the wire's refusal reason */
  PAGEWIRE_ERR_AUTHENTICATION = 4,
  PAGEWIRE_ERR_PEER_GONE = 5,
  PAGEWIRE_ERR_TIMEOUT = 6,
  PAGEWIRE_ERR_PATH = 7,
  PAGEWIRE_ERR_ABORTED = 8,
  PAGEWIRE_ERR_VERIFICATION = 9,
  PAGEWIRE_ERR_COMMIT_UNKNOWN = 10, /* the guest stays paused: it may run on the destination */
  PAGEWIRE_ERR_COMMIT_REFUSED = 11,
  PAGEWIRE_ERR_HOOK = 12,
  PAGEWIRE_ERR_SYSTEM = 13,
  PAGEWIRE_ERR_CANCELLED = 14, /* pagewire_*_cancel(), or a signal the embedder turned into one */
  PAGEWIRE_ERR_GUEST_LOST = 15 /* postcopy failed after the switch: neither end holds the whole guest */
} pagewire_status;

typedef struct pagewire_error {
  pagewire_status code;
  uint32_t detail;
  char message[512]; /* NUL-terminated, cut short if longer */
} pagewire_error;

typedef struct pagewire_link pagewire_link;
typedef struct pagewire_source pagewire_source;
typedef struct pagewire_destination pagewire_destination;
typedef struct pagewire_dirty_pages pagewire_dirty_pages;

/* The library's PAGEWIRE_API_VERSION, which may be newer than the header's. */
int pagewire_api_version(void);

/* ---- The link: EAL (unless port_id >= 0: the embedder runs EAL), the port, cores ---- */
typedef struct pagewire_link_config {
  const char *vdev;        /* exactly one of vdev, pci, port_id */
  const char *pci;
  int port_id;             /* -1: none */
  const char *name;        /* "source", "destination": in messages and the EAL file prefix */
  const char *file_prefix; /* NULL: pagewire-<name>-<pid> */
  uint16_t streams;
  uint16_t mtu;
  const char *local_ip;    /* "10.0.0.1" */
  const char *peer_ip;
  const char *gateway_ip;  /* NULL: the peer is on this link */
  uint16_t udp_port;
  const uint8_t *pre_shared_key; /* NULL: no authentication */
  size_t pre_shared_key_bytes;   /* at least 32 when given */
  int encrypt;
  uint32_t timeout_ms;     /* port start, link, the peer's HELLO */
} pagewire_link_config;

void pagewire_link_config_init(pagewire_link_config *config);
pagewire_status pagewire_link_open(const pagewire_link_config *config, pagewire_link **link, pagewire_error *error);
pagewire_status pagewire_link_await_up(pagewire_link *link, uint32_t timeout_ms, pagewire_error *error);
/* Any thread, any time (C++: Link::cancel): await_up, connect and accept on this link end at
 * their next wait with PAGEWIRE_ERR_CANCELLED, a peer that answered the HELLO told; a
 * running migration is cancelled. The link stays cancelled. */
void pagewire_link_cancel(pagewire_link *link, const char *reason);
void pagewire_link_close(pagewire_link *link);

/* Pages needed after the guest's to carry up to max_state_bytes of device state. */
uint64_t pagewire_state_pages(uint64_t max_state_bytes, uint32_t page_size);

/* A block of guest RAM as this process maps it (pagewire/migration/ram_block.hpp): a guest
 * is a list of them in an order both ends agree on, its pages numbered across the list. */
typedef struct pagewire_ram_block {
  void *host;
  uint64_t bytes; /* whole pages */
} pagewire_ram_block;

/* ---- Dirty tracking: what a tracker callback marks ---- */
pagewire_status pagewire_dirty_mark(pagewire_dirty_pages *pages, uint64_t first_page, uint64_t count);
/* A KVM_GET_DIRTY_LOG bitmap in one call: bit i of `words` is page first_page + i. */
pagewire_status pagewire_dirty_merge_bitmap(pagewire_dirty_pages *pages, uint64_t first_page, const uint64_t *words,
                                            uint64_t page_count);

/* ---- Source ---- */
typedef struct pagewire_round_report {
  uint32_t round;
  uint64_t pages;
  uint64_t wire_bytes;
  double seconds;
  uint64_t dirty_pages; /* the next round's work */
  double throttle;
} pagewire_round_report;

/* The hooks (pagewire/migration/hooks.hpp has the full contract). `pause` must return only
 * once nothing writes guest memory; `resume` is called only after a failure. With
 * tracker_collect NULL, the library tracks writes to the guest memory itself (userfaultfd
 * write-protection, a tracker per RAM block; the memory must be private anonymous mmap'd
 * memory). */
typedef struct pagewire_source_hooks {
  void *user;
  int (*pause)(void *user);
  void (*resume)(void *user);
  int (*set_throttle)(void *user, double fraction); /* NULL: no auto-converge */
  int (*tracker_start)(void *user);
  int (*tracker_collect)(void *user, pagewire_dirty_pages *pages);
  void (*tracker_stop)(void *user);
  void (*on_round)(void *user, const pagewire_round_report *round); /* NULL: none */
} pagewire_source_hooks;

typedef struct pagewire_source_options {
  uint32_t downtime_limit_ms;
  uint32_t max_seconds;
  const char *policy; /* "adaptive", "raw", "full", ... */
  double max_gbps;    /* 0: no cap */
  /* Postcopy (docs/design.md): "off" (default); "now"; "when-stuck" (when pre-copy stops
   * converging, instead of throttling); "after-rounds" (after postcopy_after_rounds rounds,
   * unless pre-copy converges first). The destination must run with a start hook
   * (pagewire_destination_run_postcopy). */
  const char *postcopy;
  uint32_t postcopy_after_rounds;
} pagewire_source_options;

typedef struct pagewire_migration_report {
  int verified;
  char digest[40];
  double total_seconds;
  double downtime_ms;
  double expected_downtime_ms;
  uint32_t rounds;
  uint64_t pages_sent;
  uint64_t wire_bytes;
  int postcopy;              /* the guest moved before all its pages: downtime_ms is then the pause */
  uint64_t postcopy_pages;   /* what the destination lacked at the switch */
  uint64_t pages_requested;  /* sent ahead of the rest, asked for by its faults */
} pagewire_migration_report;

void pagewire_source_options_init(pagewire_source_options *options);
/* `memory`: guest_pages pages of page_size bytes, then pagewire_state_pages() pages. */
pagewire_status pagewire_source_connect(pagewire_link *link, void *memory, size_t memory_bytes, uint64_t guest_pages,
                                        uint32_t page_size, const pagewire_source_options *options,
                                        pagewire_source **source, pagewire_error *error);
/* The same for RAM in `ram_blocks` blocks, the device state in `state_area`
 * (pagewire_state_pages() pages). Dirty tracking numbers pages across the blocks. */
pagewire_status pagewire_source_connect_blocks(pagewire_link *link, const pagewire_ram_block *ram, size_t ram_blocks,
                                               void *state_area, size_t state_area_bytes, uint32_t page_size,
                                               const pagewire_source_options *options, pagewire_source **source,
                                               pagewire_error *error);
/* PAGEWIRE_OK: the destination took the guest; it stays paused here. Any other status but
 * PAGEWIRE_ERR_COMMIT_UNKNOWN and PAGEWIRE_ERR_GUEST_LOST: the guest runs here as before. */
pagewire_status pagewire_source_run(pagewire_source *source, const pagewire_source_hooks *hooks,
                                    const void *device_state, size_t device_state_bytes,
                                    pagewire_migration_report *report, pagewire_error *error);
/* Any thread, while pagewire_source_run runs or before (C++: Source::cancel, set_max_gbps,
 * set_downtime_limit_ms). Cancel: run fails with PAGEWIRE_ERR_CANCELLED, the destination
 * told, the guest running here. The cap (0: none) and the limit apply from the next poll and
 * the next switchover decision. */
void pagewire_source_cancel(pagewire_source *source, const char *reason);
void pagewire_source_set_max_gbps(pagewire_source *source, double gbps);
void pagewire_source_set_downtime_limit_ms(pagewire_source *source, uint32_t limit_ms);
void pagewire_source_close(pagewire_source *source);
/* The session's id, for pagewire_query_outcome. */
uint32_t pagewire_source_session_id(const pagewire_source *source);

/* How a destination says a session ended (C++: query_commit_outcome). */
typedef enum pagewire_commit_outcome {
  PAGEWIRE_OUTCOME_UNKNOWN = 0,       /* no answer in time, or it does not know the session */
  PAGEWIRE_OUTCOME_COMMITTED = 1,     /* it owns the guest: keep the source's copy stopped */
  PAGEWIRE_OUTCOME_NOT_COMMITTED = 2, /* resume the source's guest */
  PAGEWIRE_OUTCOME_PENDING = 3        /* it still waits for COMMIT */
} pagewire_commit_outcome;
/* After pagewire_source_run returned PAGEWIRE_ERR_COMMIT_UNKNOWN and the source was closed,
 * or from a new process after a restart: asks the destination on `link` (no source running
 * on it) how `session` ended, for up to timeout_ms. */
pagewire_status pagewire_query_outcome(pagewire_link *link, uint32_t session, uint32_t timeout_ms,
                                       pagewire_commit_outcome *outcome, pagewire_error *error);

/* ---- Destination ---- */
/* Called once the image is verified and the source sent COMMIT, before it is acknowledged:
 * return 0 to take the guest (start it), anything else to refuse (the source resumes). */
typedef int (*pagewire_commit_hook)(void *user, const pagewire_ram_block *ram, size_t ram_blocks,
                                    const void *device_state, size_t device_state_bytes, const char *digest);

/* Postcopy: start the guest now, before all its pages are here. A page still missing faults
 * on its first touch and the toucher waits while it is fetched from the source. Return 0 once
 * it runs (quickly: the source's guest is paused meanwhile), anything else to refuse (the
 * source resumes its guest). After a 0, a failed run (PAGEWIRE_ERR_GUEST_LOST) means the
 * guest lacks pages for good: stop it. */
typedef int (*pagewire_postcopy_start_hook)(void *user, const pagewire_ram_block *ram, size_t ram_blocks,
                                            const void *device_state, size_t device_state_bytes,
                                            uint64_t missing_pages);

typedef struct pagewire_receive_report {
  char digest[40];
  double commit_wait_ms;
  double commit_hook_ms;
  size_t device_state_bytes;
  int postcopy;             /* the start hook ran: the guest moved before all its pages */
  uint64_t missing_pages;   /* at the switch */
  uint64_t remote_faults;   /* first touches of a missing page */
  double fault_median_us;   /* their waits until the page was in place */
  double fault_p99_us;
  double fault_max_us;
} pagewire_receive_report;

pagewire_status pagewire_destination_accept(pagewire_link *link, void *memory, size_t memory_bytes,
                                            uint64_t guest_pages, uint32_t page_size,
                                            pagewire_destination **destination, pagewire_error *error);
/* The same for RAM in blocks: as many pages in all as the source's, in the same order. */
pagewire_status pagewire_destination_accept_blocks(pagewire_link *link, const pagewire_ram_block *ram,
                                                   size_t ram_blocks, void *state_area, size_t state_area_bytes,
                                                   uint32_t page_size, pagewire_destination **destination,
                                                   pagewire_error *error);
pagewire_status pagewire_destination_run(pagewire_destination *destination, pagewire_commit_hook on_commit,
                                         void *user, uint32_t commit_timeout_ms, pagewire_receive_report *report,
                                         pagewire_error *error);
/* The same, taking postcopy too: should the source switch, `on_start` starts the guest here
 * first (the same `user`). */
pagewire_status pagewire_destination_run_postcopy(pagewire_destination *destination, pagewire_commit_hook on_commit,
                                                  pagewire_postcopy_start_hook on_start, void *user,
                                                  uint32_t commit_timeout_ms, pagewire_receive_report *report,
                                                  pagewire_error *error);
/* Any thread: run fails with PAGEWIRE_ERR_CANCELLED after telling the source (ABORT). */
void pagewire_destination_cancel(pagewire_destination *destination, const char *reason);
void pagewire_destination_close(pagewire_destination *destination);

#ifdef __cplusplus
}
#endif

#endif /* PAGEWIRE_H */
