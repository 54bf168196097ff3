// pagewire.h over the C++ API: opaque handles own the C++ objects; every entry point turns
// a Result into a status and an error record, and lets no exception cross into C.
#include "pagewire.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "pagewire/pagewire.hpp"

struct pagewire_link {
  pagewire::migration::Link link;
};
struct pagewire_source {
  pagewire::migration::Source source;
  std::vector<pagewire::migration::RamBlock> ram;  // for the library's own write tracking
  std::uint32_t page_size;
};
struct pagewire_destination {
  pagewire::migration::Destination destination;
};
struct pagewire_dirty_pages {
  pagewire::migration::DirtyPages& pages;
};

namespace {

using pagewire::ErrorCode;
using pagewire::Status;

pagewire_status report(const pagewire::Error& failure, pagewire_error* error) {
  if (error != nullptr) {
    error->code = static_cast<pagewire_status>(failure.code);
    error->detail = failure.detail;
    const std::size_t n = std::min(failure.message.size(), sizeof error->message - 1);
    std::memcpy(error->message, failure.message.data(), n);
    error->message[n] = '\0';
  }
  return static_cast<pagewire_status>(failure.code);
}

pagewire_status invalid(const std::string& message, pagewire_error* error) {
  return report(pagewire::make_error(ErrorCode::kConfiguration, message), error);
}

// Runs `body` (returning a pagewire_status), turning an escaping exception into an error.
template <typename Body>
pagewire_status guarded(pagewire_error* error, Body&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return report(pagewire::make_error(ErrorCode::kSystem, "out of memory"), error);
  } catch (const std::exception& e) {
    return report(pagewire::make_error(ErrorCode::kFailed, e.what()), error);
  }
}

Status from_callback(int result, const char* hook) {
  if (result == 0) return pagewire::Ok{};
  return pagewire::make_error(ErrorCode::kHook, std::string(hook) + " returned " + std::to_string(result));
}

void copy_digest(const std::string& digest, char (&out)[40]) {
  const std::size_t n = std::min(digest.size(), sizeof out - 1);
  std::memcpy(out, digest.data(), n);
  out[n] = '\0';
}

// The C hooks as the C++ interfaces.
class CallbackGuest final : public pagewire::migration::GuestControl {
 public:
  explicit CallbackGuest(const pagewire_source_hooks& hooks) : hooks_(hooks) {}
  Status pause() override { return from_callback(hooks_.pause(hooks_.user), "pause"); }
  void resume() override { hooks_.resume(hooks_.user); }
  Status set_throttle(double fraction) override {
    if (hooks_.set_throttle == nullptr) return pagewire::make_error(ErrorCode::kHook, "no set_throttle hook");
    return from_callback(hooks_.set_throttle(hooks_.user, fraction), "set_throttle");
  }

 private:
  const pagewire_source_hooks& hooks_;
};

class CallbackTracker final : public pagewire::migration::DirtyTracker {
 public:
  explicit CallbackTracker(const pagewire_source_hooks& hooks) : hooks_(hooks) {}
  Status start() override {
    return hooks_.tracker_start == nullptr ? Status{pagewire::Ok{}}
                                           : from_callback(hooks_.tracker_start(hooks_.user), "tracker_start");
  }
  Status collect(pagewire::migration::DirtyPages& pages) override {
    pagewire_dirty_pages handle{pages};
    return from_callback(hooks_.tracker_collect(hooks_.user, &handle), "tracker_collect");
  }
  void stop() override {
    if (hooks_.tracker_stop != nullptr) hooks_.tracker_stop(hooks_.user);
  }

 private:
  const pagewire_source_hooks& hooks_;
};

Status set_postcopy(const pagewire_source_options* options, pagewire::migration::SourceOptions* c);

// pagewire_source_options as the C++ API's.
pagewire::Result<pagewire::migration::SourceOptions> source_options(const pagewire_source_options* options) {
  pagewire_source_options defaults;
  pagewire_source_options_init(&defaults);
  const pagewire_source_options& o = options != nullptr ? *options : defaults;
  pagewire::migration::SourceOptions c;
  c.migration.downtime_limit_ms = o.downtime_limit_ms;
  c.migration.max_seconds = o.max_seconds;
  c.policy = o.policy != nullptr ? o.policy : "adaptive";
  c.max_gbps = o.max_gbps;
  c.migration.postcopy_after_rounds = o.postcopy_after_rounds;
  if (Status postcopy = set_postcopy(&o, &c); !postcopy) return postcopy.error();
  return c;
}

// pagewire_source_options::postcopy; an unknown word is the caller's error.
Status set_postcopy(const pagewire_source_options* options, pagewire::migration::SourceOptions* c) {
  using Postcopy = pagewire::migration::MigrationOptions::Postcopy;
  const std::string mode = options != nullptr && options->postcopy != nullptr ? options->postcopy : "off";
  if (mode == "off") c->migration.postcopy = Postcopy::kOff;
  else if (mode == "now") c->migration.postcopy = Postcopy::kNow;
  else if (mode == "when-stuck") c->migration.postcopy = Postcopy::kWhenStuck;
  else if (mode == "after-rounds" && c->migration.postcopy_after_rounds > 0) c->migration.postcopy = Postcopy::kAfterRounds;
  else {
    return make_error(pagewire::ErrorCode::kConfiguration,
                      "pagewire_source_options.postcopy '" + mode + "': expected off, now, when-stuck or after-rounds "
                      "(with postcopy_after_rounds at least 1)");
  }
  return pagewire::Ok{};
}

std::vector<pagewire_ram_block> c_blocks(std::span<const pagewire::migration::RamBlock> ram) {
  std::vector<pagewire_ram_block> blocks;
  for (const auto& block : ram) blocks.push_back({block.host, block.bytes});
  return blocks;
}

pagewire_receive_report receive_report(const pagewire::migration::ReceiveReport& r) {
  pagewire_receive_report out{.digest = {},
                              .commit_wait_ms = r.commit_wait_ms,
                              .commit_hook_ms = r.commit_hook_ms,
                              .device_state_bytes = r.device_state.size(),
                              .postcopy = r.postcopy.switched ? 1 : 0,
                              .missing_pages = r.postcopy.missing_pages,
                              .remote_faults = r.postcopy.remote_faults,
                              .fault_median_us = r.postcopy.fault_median_us,
                              .fault_p99_us = r.postcopy.fault_p99_us,
                              .fault_max_us = r.postcopy.fault_max_us};
  copy_digest(r.digest, out.digest);
  return out;
}

std::vector<pagewire::migration::RamBlock> ram_of(const pagewire_ram_block* ram, size_t ram_blocks) {
  std::vector<pagewire::migration::RamBlock> blocks;
  for (size_t b = 0; b < ram_blocks; ++b) blocks.push_back({static_cast<std::byte*>(ram[b].host), ram[b].bytes});
  return blocks;
}

}  // namespace

extern "C" {

int pagewire_api_version(void) { return PAGEWIRE_API_VERSION; }

void pagewire_link_config_init(pagewire_link_config* config) {
  *config = pagewire_link_config{};
  config->port_id = -1;
  config->name = "pagewire";
  config->streams = 1;
  config->mtu = 9000;
  config->udp_port = 47000;
  config->timeout_ms = 120000;
}

pagewire_status pagewire_link_open(const pagewire_link_config* config, pagewire_link** link, pagewire_error* error) {
  return guarded(error, [&] {
    if (config == nullptr || link == nullptr) return invalid("pagewire_link_open: config and link are required", error);
    pagewire::migration::LinkConfig c;
    c.vdev = config->vdev != nullptr ? config->vdev : "";
    c.pci = config->pci != nullptr ? config->pci : "";
    c.port_id = config->port_id;
    c.name = config->name != nullptr ? config->name : "pagewire";
    c.file_prefix = config->file_prefix != nullptr ? config->file_prefix : "";
    c.streams = config->streams;
    c.mtu = config->mtu;
    c.udp_port = config->udp_port;
    c.encrypt = config->encrypt != 0;
    c.timeout_ms = config->timeout_ms;
    if (config->pre_shared_key != nullptr) {
      c.pre_shared_key.assign(config->pre_shared_key, config->pre_shared_key + config->pre_shared_key_bytes);
    }
    for (auto [text, field, out] : {std::tuple{config->local_ip, "local_ip", &c.local_ip},
                                    std::tuple{config->peer_ip, "peer_ip", &c.peer_ip},
                                    std::tuple{config->gateway_ip, "gateway_ip", &c.gateway_ip}}) {
      if (text == nullptr) continue;
      auto ip = pagewire::migration::parse_ipv4(text, field);
      if (!ip) return report(ip.error(), error);
      *out = *ip;
    }
    auto opened = pagewire::migration::Link::open(c);
    if (!opened) return report(opened.error(), error);
    *link = new pagewire_link{std::move(opened).value()};
    return PAGEWIRE_OK;
  });
}

pagewire_status pagewire_link_await_up(pagewire_link* link, uint32_t timeout_ms, pagewire_error* error) {
  return guarded(error, [&] {
    if (Status up = link->link.await_up(timeout_ms); !up) return report(up.error(), error);
    return PAGEWIRE_OK;
  });
}

uint32_t pagewire_source_session_id(const pagewire_source* source) { return source->source.session_id(); }

static_assert(PAGEWIRE_OUTCOME_COMMITTED == static_cast<int>(pagewire::migration::CommitOutcome::kCommitted) &&
              PAGEWIRE_OUTCOME_NOT_COMMITTED == static_cast<int>(pagewire::migration::CommitOutcome::kNotCommitted) &&
              PAGEWIRE_OUTCOME_PENDING == static_cast<int>(pagewire::migration::CommitOutcome::kPending) &&
              PAGEWIRE_OUTCOME_UNKNOWN == static_cast<int>(pagewire::migration::CommitOutcome::kUnknown));

pagewire_status pagewire_query_outcome(pagewire_link* link, uint32_t session, uint32_t timeout_ms,
                                       pagewire_commit_outcome* outcome, pagewire_error* error) {
  return guarded(error, [&] {
    if (link == nullptr || outcome == nullptr) return invalid("pagewire_query_outcome: link and outcome are required", error);
    auto answered = pagewire::migration::query_commit_outcome(link->link, session, timeout_ms);
    if (!answered) return report(answered.error(), error);
    *outcome = static_cast<pagewire_commit_outcome>(*answered);
    return PAGEWIRE_OK;
  });
}

void pagewire_link_cancel(pagewire_link* link, const char* reason) {
  link->link.cancel(reason != nullptr ? reason : "cancelled");
}

void pagewire_link_close(pagewire_link* link) { delete link; }

uint64_t pagewire_state_pages(uint64_t max_state_bytes, uint32_t page_size) {
  return pagewire::migration::state_pages_for(max_state_bytes, page_size);
}

pagewire_status pagewire_dirty_mark(pagewire_dirty_pages* pages, uint64_t first_page, uint64_t count) {
  Status marked = pages->pages.mark_range(first_page, count);
  return marked ? PAGEWIRE_OK : static_cast<pagewire_status>(marked.error().code);
}

pagewire_status pagewire_dirty_merge_bitmap(pagewire_dirty_pages* pages, uint64_t first_page, const uint64_t* words,
                                            uint64_t page_count) {
  Status merged = pages->pages.merge_bitmap(first_page, std::span(words, (page_count + 63) / 64), page_count);
  return merged ? PAGEWIRE_OK : static_cast<pagewire_status>(merged.error().code);
}

void pagewire_source_options_init(pagewire_source_options* options) {
  const pagewire::migration::MigrationOptions defaults;
  *options = pagewire_source_options{.downtime_limit_ms = defaults.downtime_limit_ms,
                                     .max_seconds = defaults.max_seconds,
                                     .policy = "adaptive",
                                     .max_gbps = 0,
                                     .postcopy = "off",
                                     .postcopy_after_rounds = defaults.postcopy_after_rounds};
}

pagewire_status pagewire_source_connect(pagewire_link* link, void* memory, size_t memory_bytes, uint64_t guest_pages,
                                        uint32_t page_size, const pagewire_source_options* options,
                                        pagewire_source** source, pagewire_error* error) {
  return guarded(error, [&] {
    if (link == nullptr || memory == nullptr || source == nullptr) {
      return invalid("pagewire_source_connect: link, memory and source are required", error);
    }
    const std::span<std::byte> bytes(static_cast<std::byte*>(memory), memory_bytes);
    auto settings = source_options(options);
    if (!settings) return report(settings.error(), error);
    auto connected = pagewire::migration::Source::connect(link->link, bytes, guest_pages, page_size, *settings);
    if (!connected) return report(connected.error(), error);
    *source = new pagewire_source{std::move(connected).value(), {{bytes.data(), guest_pages * page_size}}, page_size};
    return PAGEWIRE_OK;
  });
}

pagewire_status pagewire_source_connect_blocks(pagewire_link* link, const pagewire_ram_block* ram, size_t ram_blocks,
                                               void* state_area, size_t state_area_bytes, uint32_t page_size,
                                               const pagewire_source_options* options, pagewire_source** source,
                                               pagewire_error* error) {
  return guarded(error, [&] {
    if (link == nullptr || (ram == nullptr && ram_blocks > 0) || state_area == nullptr || source == nullptr) {
      return invalid("pagewire_source_connect_blocks: link, ram, state_area and source are required", error);
    }
    std::vector<pagewire::migration::RamBlock> blocks = ram_of(ram, ram_blocks);
    const std::span<std::byte> state(static_cast<std::byte*>(state_area), state_area_bytes);
    auto settings = source_options(options);
    if (!settings) return report(settings.error(), error);
    auto connected = pagewire::migration::Source::connect(link->link, blocks, state, page_size, *settings);
    if (!connected) return report(connected.error(), error);
    *source = new pagewire_source{std::move(connected).value(), std::move(blocks), page_size};
    return PAGEWIRE_OK;
  });
}

pagewire_status pagewire_source_run(pagewire_source* source, const pagewire_source_hooks* hooks,
                                    const void* device_state, size_t device_state_bytes,
                                    pagewire_migration_report* out, pagewire_error* error) {
  return guarded(error, [&] {
    if (source == nullptr || hooks == nullptr || hooks->pause == nullptr || hooks->resume == nullptr) {
      return invalid("pagewire_source_run: source and the pause and resume hooks are required", error);
    }
    CallbackGuest guest(*hooks);
    CallbackTracker callbacks(*hooks);
    std::optional<pagewire::migration::TrackerGroup> written;  // the library's own, when none is given
    pagewire::migration::DirtyTracker* tracker = &callbacks;
    if (hooks->tracker_collect == nullptr) {
      auto created = pagewire::migration::track_writes(source->ram, source->page_size);
      if (!created) return report(created.error(), error);
      written.emplace(std::move(created).value());
      tracker = &*written;
    }
    auto on_round = [&](const pagewire::migration::RoundReport& r) {
      if (hooks->on_round == nullptr) return;
      const pagewire_round_report round{r.round, r.pages, r.wire_bytes, r.seconds, r.dirty_pages, r.throttle};
      hooks->on_round(hooks->user, &round);
    };
    const std::span state(static_cast<const std::byte*>(device_state), device_state_bytes);
    auto result = source->source.run(guest, *tracker, state, on_round);
    if (!result) return report(result.error(), error);
    if (out != nullptr) {
      *out = pagewire_migration_report{.verified = result->verified ? 1 : 0,
                                       .digest = {},
                                       .total_seconds = result->total_seconds,
                                       .downtime_ms = result->downtime_ms,
                                       .expected_downtime_ms = result->expected_downtime_ms,
                                       .rounds = result->rounds,
                                       .pages_sent = result->pages_sent,
                                       .wire_bytes = result->wire_bytes,
                                       .postcopy = result->postcopy ? 1 : 0,
                                       .postcopy_pages = result->postcopy_pages,
                                       .pages_requested = result->pages_requested};
      copy_digest(result->digest, out->digest);
    }
    return PAGEWIRE_OK;
  });
}

void pagewire_source_cancel(pagewire_source* source, const char* reason) {
  source->source.cancel(reason != nullptr ? reason : "cancelled");
}
void pagewire_source_set_max_gbps(pagewire_source* source, double gbps) { source->source.set_max_gbps(gbps); }
void pagewire_source_set_downtime_limit_ms(pagewire_source* source, uint32_t limit_ms) {
  source->source.set_downtime_limit_ms(limit_ms);
}

void pagewire_source_close(pagewire_source* source) { delete source; }

pagewire_status pagewire_destination_accept(pagewire_link* link, void* memory, size_t memory_bytes,
                                            uint64_t guest_pages, uint32_t page_size,
                                            pagewire_destination** destination, pagewire_error* error) {
  return guarded(error, [&] {
    if (link == nullptr || memory == nullptr || destination == nullptr) {
      return invalid("pagewire_destination_accept: link, memory and destination are required", error);
    }
    const std::span<std::byte> bytes(static_cast<std::byte*>(memory), memory_bytes);
    auto accepted = pagewire::migration::Destination::accept(link->link, bytes, guest_pages, page_size);
    if (!accepted) return report(accepted.error(), error);
    *destination = new pagewire_destination{std::move(accepted).value()};
    return PAGEWIRE_OK;
  });
}

pagewire_status pagewire_destination_accept_blocks(pagewire_link* link, const pagewire_ram_block* ram,
                                                   size_t ram_blocks, void* state_area, size_t state_area_bytes,
                                                   uint32_t page_size, pagewire_destination** destination,
                                                   pagewire_error* error) {
  return guarded(error, [&] {
    if (link == nullptr || (ram == nullptr && ram_blocks > 0) || state_area == nullptr || destination == nullptr) {
      return invalid("pagewire_destination_accept_blocks: link, ram, state_area and destination are required", error);
    }
    const std::vector<pagewire::migration::RamBlock> blocks = ram_of(ram, ram_blocks);
    const std::span<std::byte> state(static_cast<std::byte*>(state_area), state_area_bytes);
    auto accepted = pagewire::migration::Destination::accept(link->link, blocks, state, page_size);
    if (!accepted) return report(accepted.error(), error);
    *destination = new pagewire_destination{std::move(accepted).value()};
    return PAGEWIRE_OK;
  });
}

pagewire_status pagewire_destination_run(pagewire_destination* destination, pagewire_commit_hook on_commit, void* user,
                                         uint32_t commit_timeout_ms, pagewire_receive_report* out,
                                         pagewire_error* error) {
  return pagewire_destination_run_postcopy(destination, on_commit, nullptr, user, commit_timeout_ms, out, error);
}

pagewire_status pagewire_destination_run_postcopy(pagewire_destination* destination, pagewire_commit_hook on_commit,
                                                  pagewire_postcopy_start_hook on_start, void* user,
                                                  uint32_t commit_timeout_ms, pagewire_receive_report* out,
                                                  pagewire_error* error) {
  return guarded(error, [&] {
    if (destination == nullptr) return invalid("pagewire_destination_run: destination is required", error);
    pagewire::migration::CommitHook hook;
    if (on_commit != nullptr) {
      hook = [&](const pagewire::migration::CommittedImage& image) {
        const std::vector<pagewire_ram_block> ram = c_blocks(image.ram);
        return from_callback(on_commit(user, ram.data(), ram.size(), image.device_state.data(),
                                       image.device_state.size(), image.digest.c_str()),
                             "commit hook");
      };
    }
    pagewire::migration::PostcopyStartHook start;
    if (on_start != nullptr) {
      start = [&](const pagewire::migration::StartingImage& image) {
        const std::vector<pagewire_ram_block> ram = c_blocks(image.ram);
        return from_callback(on_start(user, ram.data(), ram.size(), image.device_state.data(),
                                      image.device_state.size(), image.missing_pages),
                             "postcopy start hook");
      };
    }
    auto result = destination->destination.run(hook, commit_timeout_ms, start);
    if (!result) return report(result.error(), error);
    if (out != nullptr) *out = receive_report(*result);
    return PAGEWIRE_OK;
  });
}

void pagewire_destination_cancel(pagewire_destination* destination, const char* reason) {
  destination->destination.cancel(reason != nullptr ? reason : "cancelled");
}

void pagewire_destination_close(pagewire_destination* destination) { delete destination; }

}  // extern "C"
