// The sending side of pagecodec: guest pages in, page records out.
//
// One Encoder per stream core. It owns its delta cache, deflate state and scratch buffer,
// all allocated by create(); encode() then runs with no allocation, lock or syscall and
// may sit in a data-path loop. Not thread-safe: only the owning core calls it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "pagewire/pagecodec/deflate.hpp"
#include "pagewire/pagecodec/delta_cache.hpp"
#include "pagewire/pagecodec/duplicate_index.hpp"
#include "pagewire/pagecodec/page_map.hpp"
#include "pagewire/pagecodec/policy.hpp"
#include "pagewire/pagecodec/record.hpp"
#include "pagewire/pagecodec/xbzrle.hpp"
#include "pagewire/result.hpp"

namespace pagewire::pagecodec {

struct EncoderConfig {
  std::uint32_t page_size = 4096;
  std::uint64_t region_pages = 0;  // pages in the guest region that page indices refer to
  std::uint64_t delta_cache_bytes = 64ull << 20;
  // Slots of the duplicate index (24 bytes each), used when policy.duplicates. One round sends
  // at most four times as many COPY records (or one per region page), 16 bytes each to remember.
  std::size_t duplicate_slots = std::size_t{1} << 18;
  Policy policy;
};

// A COPY the encoder sent this round: `page` now holds what `source` held. Should `source`
// turn out to have been written after it was sent (it is in the next dirty log), `page`
// holds stale bytes at the receiver and must be sent again.
struct PageCopy {
  std::uint64_t page;
  std::uint64_t source;
};

struct EncoderCounters {
  std::array<std::uint64_t, kEncodingCount> pages{};    // indexed by Encoding
  std::array<std::uint64_t, kEncodingCount> records{};  // indexed by Encoding
  std::uint64_t input_bytes = 0;      // guest bytes encoded
  std::uint64_t output_bytes = 0;     // record bytes produced, headers included
  std::uint64_t delta_overflows = 0;  // cache hits whose delta was too large
  std::uint64_t deflate_overflows = 0;  // batches deflate did not shrink enough
};

// Per-core counters, summed on read.
inline EncoderCounters& operator+=(EncoderCounters& total, const EncoderCounters& c) {
  for (std::size_t e = 0; e < total.pages.size(); ++e) {
    total.pages[e] += c.pages[e];
    total.records[e] += c.records[e];
  }
  total.input_bytes += c.input_bytes;
  total.output_bytes += c.output_bytes;
  total.delta_overflows += c.delta_overflows;
  total.deflate_overflows += c.deflate_overflows;
  return total;
}

enum class EncodeStop : std::uint8_t {
  kDone,            // every page was encoded
  kOutputFull,      // out has no room for the next record: send it and call again
  kPageOutOfRange,  // pages[pages_consumed] is not in the region (a caller bug)
};

struct EncodeProgress {
  std::size_t pages_consumed = 0;
  std::size_t bytes_written = 0;
  EncodeStop stop = EncodeStop::kDone;
};

// A RAW payload left in guest memory (zero-copy): its bytes belong at `offset` of encode()'s
// output, which encode() reserves but does not fill (it may hold a delta that did not pay);
// the sender points its frame at `bytes` instead.
struct PageReference {
  std::size_t offset = 0;
  const std::byte* bytes = nullptr;
  std::uint32_t length = 0;
};
struct PageReferences {
  static constexpr std::size_t kMax = 7;  // with the gaps between them, 15 frame segments
  std::array<PageReference, kMax> items{};
  std::size_t count = 0;
};

class Encoder {
 public:
  static Result<Encoder> create(const EncoderConfig& config);

  // Encodes `pages` of `memory` (page indices, strictly ascending) as they are now, tagging
  // each record with `generation`. Records go to `out` back to back; an `out` of at least
  // max_record_bytes() always takes at least one record. `memory` may be written by the
  // guest concurrently: every record is self-consistent and the delta cache keeps exactly
  // what was encoded. A record never spans two of the memory's blocks.
  //
  // With `by_reference`, RAW payloads (not deflate's) are left in `memory` and described
  // there, up to PageReferences::kMax of them (then kOutputFull). Only for pages the guest
  // cannot write until the receiver has them (a paused guest): the record's CRC and the
  // delta cache take the page as it is now, and the sender reads it again later.
  EncodeProgress encode(const PageMap& memory, std::span<const std::uint64_t> pages,
                        std::uint32_t generation, std::span<std::byte> out,
                        PageReferences* by_reference = nullptr);

  // The pages of the round about to be encoded (ascending; kept by the caller until the next
  // begin_round). A COPY never names one of them before it has been sent again: the receiver
  // still holds its older content. Clears copies().
  void begin_round(std::span<const std::uint64_t> round_pages);
  // The COPY records sent since begin_round, for the caller's dirty-log check (PageCopy).
  std::span<const PageCopy> copies() const { return copies_; }
  // The peer no longer holds the version of `page` we last sent (it refused a DELTA): the
  // next encode of the page must not be a DELTA.
  void forget(std::uint64_t page) { cache_.invalidate(page); }
  // From now on the receiver holds nothing this encoder may build on (postcopy: its guest
  // runs and writes the pages it holds, and the others were dropped): no DELTA and no COPY,
  // every page goes whole (ZERO, DEFLATE or RAW). For good: the bases never come back.
  void stop_building_on_receiver() { receiver_bases_ = false; }
  bool builds_on_receiver() const { return receiver_bases_; }

  // The payload of the frames a transport cuts the records into. A RAW batch that is not
  // going to be deflated then holds the pages one such frame holds, at least one: a record
  // spread over few frames is one a receiver can apply as soon as they are all in, while a
  // hole before them is repaired (a 16-page batch spans 46 frames at MTU 1500). The price
  // where a page outgrows the frame is a record header per page (32 bytes in 4 KiB).
  // 0: batches as large as a DEFLATE batch, whatever the frame.
  void cut_raw_for(std::size_t frame_payload_bytes) { raw_frame_payload_ = frame_payload_bytes; }

  // The largest record encode() can produce (a RAW batch).
  std::size_t max_record_bytes() const;
  // Whether every record encode() writes into `room` bytes is whole there, so that a
  // transport may encode straight into a frame of that payload: no DEFLATE batch (whose RAW
  // fallback may exceed the room) and room for a one-page record (RAW batches shrink to
  // what fits; a DELTA or COPY is smaller than a page).
  bool records_fit_whole(std::size_t room) const {
    return !config_.policy.deflate && room >= kRecordHeaderBytes + config_.page_size;
  }

  const EncoderConfig& config() const { return config_; }
  const EncoderCounters& counters() const { return counters_; }
  const DeltaCache& delta_cache() const { return cache_; }
  const DuplicateCounters& duplicates() const { return duplicate_counters_; }
  const DeflateAdvisor& advisor() const { return advisor_; }
  // What the path delivers for this encoder's stream, for the adaptive policy when it was
  // given no link rate (AdaptivePolicy::link_bytes_per_second 0); 0: not known yet.
  void set_measured_link_rate(double bytes_per_second) { advisor_.set_measured_link(bytes_per_second); }
  // The stream's own rate cap, bytes per second (0: none): DeflateAdvisor::set_send_cap.
  void set_send_cap(double bytes_per_second) { advisor_.set_send_cap(bytes_per_second); }

 private:
  Encoder(const EncoderConfig& config, DeltaCache cache, DeflateCompressor compressor, DuplicateIndex index);

  bool is_zero(const std::byte* page) const;
  // Fingerprints the pages after pages[first], as the batch grows, into batch_fingerprints_.
  std::size_t batch_length(const PageMap& memory, std::span<const std::uint64_t> pages,
                           std::size_t first, std::size_t limit);
  // A page the receiver already holds with the same bytes as `page` (and the generation it
  // holds it at), or nullptr.
  const DuplicateIndex::Entry* duplicate_of(const PageMap& memory, std::uint64_t page, std::uint64_t fingerprint,
                                            std::uint32_t generation);
  std::size_t write_copy(const PageMap& memory, std::uint64_t page, const DuplicateIndex::Entry& source,
                         std::uint32_t generation, std::byte* out);
  void note_looked(bool copied);
  // `leave_in_guest`: a RAW payload is not copied, and *leave_in_guest says so.
  std::size_t write_batch(const PageMap& memory, std::uint64_t first_page,
                          std::uint32_t count, std::uint32_t generation, bool deflate,
                          std::byte* out, std::size_t room, bool* leave_in_guest);
  void write_header(std::byte* out, Encoding encoding, std::uint32_t page_count,
                    std::size_t payload_bytes, std::uint64_t first_page,
                    std::uint32_t generation, std::uint32_t base_generation,
                    const std::byte* crc_source, std::size_t crc_bytes);

  bool delta_on() const { return receiver_bases_ && config_.policy.delta; }
  std::size_t batch_pages(bool deflate) const;
  bool looks_for_duplicates() { return receiver_bases_ && duplicates_.should_look(); }

  EncoderConfig config_;
  bool receiver_bases_ = true;  // stop_building_on_receiver()
  std::size_t raw_frame_payload_ = 0;  // cut_raw_for()
  DeltaCache cache_;
  DeflateCompressor compressor_;
  DeflateAdvisor advisor_;
  xbzrle::EncodeFn delta_encode_;
  std::unique_ptr<std::byte[]> scratch_;  // a snapshot of one deflate batch
  DuplicateIndex duplicates_;
  std::span<const std::uint64_t> round_pages_;
  std::vector<PageCopy> copies_;  // reserved at creation: never grows on the data path
  std::array<std::uint64_t, kMaxDeflateBatchPages> batch_fingerprints_{};
  EncoderCounters counters_;
  DuplicateCounters duplicate_counters_;
};

}  // namespace pagewire::pagecodec
