#include "pagewire/pagecodec/encoder.hpp"

#include <isa-l/mem_routines.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "crc.hpp"

namespace pagewire::pagecodec {

namespace {

// A page the duplicate index did not look at (a real fingerprint equal to it only loses a saving).
constexpr std::uint64_t kNotLooked = 0;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
}

}  // namespace

Result<Encoder> Encoder::create(const EncoderConfig& config) {
  if (!is_valid_page_size(config.page_size)) {
    return make_error("page size " + std::to_string(config.page_size) +
                      ": expected a power of two from 4096 to 65536");
  }
  if (config.region_pages == 0) return make_error("region of 0 pages: expected at least one");
  if (auto status = config.policy.validate(); !status) return status.error();
  auto cache = DeltaCache::create(config.page_size, config.region_pages,
                                  config.policy.delta ? config.delta_cache_bytes : 0);
  if (!cache) return cache.error();
  auto compressor = DeflateCompressor::create(config.policy.deflate_level);
  if (!compressor) return compressor.error();
  auto index = DuplicateIndex::create(config.policy.duplicates ? config.duplicate_slots : 0);
  if (!index) return index.error();
  return Encoder(config, std::move(cache).value(), std::move(compressor).value(), std::move(index).value());
}

Encoder::Encoder(const EncoderConfig& config, DeltaCache cache, DeflateCompressor compressor, DuplicateIndex index)
    : config_(config),
      cache_(std::move(cache)),
      compressor_(std::move(compressor)),
      advisor_(config.policy.adaptive),
      delta_encode_(xbzrle::best_encoder()),
      scratch_(std::make_unique<std::byte[]>(std::size_t{config.policy.deflate_batch_pages} *
                                             config.page_size)),
      duplicates_(std::move(index)) {
  // A COPY per page of the region at most; bounded by the index's size times four.
  copies_.reserve(duplicates_.enabled() ? std::min<std::uint64_t>(config.region_pages, 4 * config.duplicate_slots) : 0);
}

void Encoder::note_looked(bool copied) {
  ++duplicate_counters_.looked;
  duplicates_.looked(copied);
}

void Encoder::begin_round(std::span<const std::uint64_t> round_pages) {
  round_pages_ = round_pages;
  copies_.clear();
}

const DuplicateIndex::Entry* Encoder::duplicate_of(const PageMap& memory, std::uint64_t page,
                                                   std::uint64_t fingerprint, std::uint32_t generation) {
  const DuplicateIndex::Entry* source = duplicates_.find(fingerprint);
  if (source == nullptr || source->page == page) return nullptr;
  ++duplicate_counters_.candidates;
  // The receiver holds the source page as it was sent at source->generation. If the page is
  // in this round and was not sent again yet (its entry is older), it changed since: a COPY
  // would hand the receiver its stale bytes.
  if (source->generation != generation &&
      std::binary_search(round_pages_.begin(), round_pages_.end(), source->page)) {
    ++duplicate_counters_.pending;
    return nullptr;
  }
  const std::size_t page_size = config_.page_size;
  if (source->page >= memory.pages() || std::memcmp(memory.page(page), memory.page(source->page), page_size) != 0) {
    ++duplicate_counters_.differed;
    return nullptr;
  }
  if (copies_.size() == copies_.capacity()) {
    ++duplicate_counters_.dependencies_full;
    return nullptr;
  }
  return source;
}

std::size_t Encoder::write_copy(const PageMap& memory, std::uint64_t page, const DuplicateIndex::Entry& source,
                                std::uint32_t generation, std::byte* out) {
  const std::byte* guest = memory.page(page);
  write_header(out, Encoding::kCopy, 1, kCopyPayloadBytes, page, generation, source.generation, guest,
               config_.page_size);
  le64 source_page;
  source_page.set(source.page);
  std::memcpy(out + kRecordHeaderBytes, &source_page, sizeof source_page);
  copies_.push_back(PageCopy{page, source.page});
  ++duplicate_counters_.confirmed;
  // The receiver's copy is the source page's bytes, which a later DELTA must not assume it
  // knows better than "the same as the page now": send the next version in full.
  cache_.invalidate(page);
  return kRecordHeaderBytes + kCopyPayloadBytes;
}

// What a batch may hold: a DEFLATE batch when it is to be deflated, else what cut_raw_for()
// allows.
std::size_t Encoder::batch_pages(bool deflate) const {
  const std::size_t deflate_batch = config_.policy.deflate_batch_pages;
  if (deflate || raw_frame_payload_ == 0) return deflate_batch;
  const std::size_t frame_pages = raw_frame_payload_ / (kRecordHeaderBytes + config_.page_size);
  return std::clamp<std::size_t>(frame_pages, 1, deflate_batch);
}

std::size_t Encoder::max_record_bytes() const {
  return kRecordHeaderBytes + std::size_t{config_.policy.deflate_batch_pages} * config_.page_size;
}

bool Encoder::is_zero(const std::byte* page) const {
  return isal_zero_detect(const_cast<std::byte*>(page), config_.page_size) == 0;
}

void Encoder::write_header(std::byte* out, Encoding encoding, std::uint32_t page_count,
                           std::size_t payload_bytes, std::uint64_t first_page,
                           std::uint32_t generation, std::uint32_t base_generation,
                           const std::byte* crc_source, std::size_t crc_bytes) {
  RecordHeader header{};
  header.encoding = static_cast<std::uint8_t>(encoding);
  header.page_count.set(static_cast<std::uint16_t>(page_count));
  header.payload_bytes.set(static_cast<std::uint32_t>(payload_bytes));
  header.first_page.set(first_page);
  header.generation.set(generation);
  header.base_generation.set(base_generation);
  if (config_.policy.crc && crc_bytes > 0) {
    header.flags = kRecordFlagCrc;
    header.crc32c.set(crc32c({crc_source, crc_bytes}));
  }
  std::memcpy(out, &header, sizeof header);

  const auto index = static_cast<std::size_t>(encoding);
  counters_.pages[index] += page_count;
  counters_.records[index] += 1;
  counters_.input_bytes += std::uint64_t{page_count} * config_.page_size;
  counters_.output_bytes += kRecordHeaderBytes + payload_bytes;
}

// How many pages from pages[first] on form one DEFLATE/RAW batch: contiguous indices in the
// region and in memory (one block), not zero, not duplicates of a page the receiver holds, not in the delta cache
// (those take their own paths), at most `limit`. pages[first] itself was checked by encode().
std::size_t Encoder::batch_length(const PageMap& memory, std::span<const std::uint64_t> pages,
                                  std::size_t first, std::size_t limit) {
  const std::uint64_t first_page = pages[first];
  const std::byte* const first_guest = memory.page(first_page);
  limit = std::min<std::uint64_t>({limit, memory.run_from(first_page), config_.region_pages - first_page});
  std::size_t count = 1;
  while (count < limit && first + count < pages.size()) {
    const std::uint64_t page = pages[first + count];
    if (page != first_page + count) break;
    const std::byte* guest = first_guest + count * config_.page_size;
    if (config_.policy.zero && is_zero(guest)) break;
    if (delta_on() && cache_.contains(page)) break;
    batch_fingerprints_[count] = kNotLooked;
    if (looks_for_duplicates()) {
      // A page like one sent before, or like one earlier in this batch, ends the batch:
      // encode() looks at it again next, once the batch is in the index.
      const std::uint64_t fingerprint = DuplicateIndex::fingerprint(guest, config_.page_size);
      const auto batched = batch_fingerprints_.begin();
      const DuplicateIndex::Entry* sent = duplicates_.find(fingerprint);
      if ((sent != nullptr && sent->page != page) ||
          std::find(batched, batched + static_cast<std::ptrdiff_t>(count), fingerprint) != batched + count) {
        break;
      }
      batch_fingerprints_[count] = fingerprint;
      note_looked(false);
    }
    ++count;
  }
  return count;
}

// Writes one DEFLATE record for the batch, or a RAW one when deflate does not pay.
// Returns the record's size; `room` must hold the RAW record.
std::size_t Encoder::write_batch(const PageMap& memory, std::uint64_t first_page,
                                 std::uint32_t count, std::uint32_t generation, bool deflate,
                                 std::byte* out, std::size_t room, bool* leave_in_guest) {
  const std::size_t page_size = config_.page_size;
  const std::size_t raw_bytes = count * page_size;
  const std::byte* guest = memory.page(first_page);  // batch_length kept the batch in one block
  std::byte* payload = out + kRecordHeaderBytes;
  const bool adaptive = config_.policy.adaptive.enabled;
  const std::byte* sent = payload;  // where the bytes the receiver will see are kept

  if (deflate) {
    // The guest may write these pages while deflate reads them, and deflate reads its input
    // more than once; compress a snapshot so that record, CRC and cache agree.
    std::memcpy(scratch_.get(), guest, raw_bytes);
    const std::uint64_t started = adaptive ? now_ns() : 0;
    const std::size_t worth_it = raw_bytes * config_.policy.deflate_max_percent / 100;
    const std::size_t compressed =
        compressor_.compress({scratch_.get(), raw_bytes},
                             {payload, std::min(worth_it, room - kRecordHeaderBytes)});
    if (adaptive) {
      advisor_.record_deflate(raw_bytes, compressed == 0 ? raw_bytes : compressed,
                              now_ns() - started);
    }
    sent = scratch_.get();
    if (compressed > 0) {
      write_header(out, Encoding::kDeflate, count, compressed, first_page, generation, 0, sent,
                   raw_bytes);
      for (std::uint32_t k = 0; k < count; ++k) {
        cache_.record_sent(first_page + k, sent + k * page_size, generation);
      }
      return kRecordHeaderBytes + compressed;
    }
    ++counters_.deflate_overflows;
    std::memcpy(payload, scratch_.get(), raw_bytes);
  } else if (leave_in_guest != nullptr) {
    *leave_in_guest = true;
    sent = guest;
  } else {
    const std::uint64_t started = adaptive ? now_ns() : 0;
    std::memcpy(payload, guest, raw_bytes);
    if (adaptive) advisor_.record_raw(raw_bytes, now_ns() - started);
  }
  write_header(out, Encoding::kRaw, count, raw_bytes, first_page, generation, 0, sent,
               raw_bytes);
  for (std::uint32_t k = 0; k < count; ++k) {
    cache_.record_sent(first_page + k, sent + k * page_size, generation);
  }
  return kRecordHeaderBytes + raw_bytes;
}

EncodeProgress Encoder::encode(const PageMap& memory, std::span<const std::uint64_t> pages,
                               std::uint32_t generation, std::span<std::byte> out,
                               PageReferences* by_reference) {
  const std::size_t page_size = config_.page_size;
  const Policy& policy = config_.policy;
  const std::size_t delta_limit = page_size * policy.delta_max_percent / 100;
  EncodeProgress progress;
  std::size_t& i = progress.pages_consumed;
  std::size_t& w = progress.bytes_written;
  // Pages the delta cache and the memory both hold (the session builds them alike).
  const std::uint64_t valid_pages = std::min(config_.region_pages, memory.pages());

  while (i < pages.size()) {
    const std::uint64_t page = pages[i];
    if (page >= valid_pages) {
      progress.stop = EncodeStop::kPageOutOfRange;
      return progress;
    }
    const std::byte* guest = memory.page(page);
    const std::size_t room = out.size() - w;

    if (policy.zero && is_zero(guest)) {
      if (room < kRecordHeaderBytes) break;
      const std::uint64_t in_block =
          std::min<std::uint64_t>({memory.run_from(page), config_.region_pages - page, kMaxPagesPerRecord});
      std::uint32_t count = 1;
      while (count < in_block && i + count < pages.size() && pages[i + count] == page + count &&
             is_zero(guest + count * page_size)) {
        ++count;
      }
      write_header(&out[w], Encoding::kZero, count, 0, page, generation, 0, nullptr, 0);
      for (std::uint32_t k = 0; k < count; ++k) cache_.record_sent(page + k, nullptr, generation);
      w += kRecordHeaderBytes;
      i += count;
      continue;
    }

    std::uint64_t fingerprint = kNotLooked;
    if (room < kRecordHeaderBytes + kCopyPayloadBytes) break;  // no record but ZERO is smaller
    if (looks_for_duplicates()) {
      fingerprint = DuplicateIndex::fingerprint(guest, page_size);
      const DuplicateIndex::Entry* source = duplicate_of(memory, page, fingerprint, generation);
      note_looked(source != nullptr);
      if (source != nullptr) {
        w += write_copy(memory, page, *source, generation, &out[w]);
        ++i;
        continue;
      }
    }

    if (delta_on()) {
      std::uint32_t base_generation = 0;
      if (std::byte* cached = cache_.lookup(page, &base_generation)) {
        if (room < kRecordHeaderBytes + delta_limit) break;
        const std::size_t delta =
            delta_encode_(guest, cached, page_size, out.subspan(w + kRecordHeaderBytes, delta_limit));
        if (delta != xbzrle::kOverflow) {
          write_header(&out[w], Encoding::kDelta, 1, delta, page, generation, base_generation,
                       cached, page_size);
          cache_.set_generation(page, generation);
          if (fingerprint != kNotLooked) duplicates_.record_sent(fingerprint, page, generation);
          w += kRecordHeaderBytes + delta;
          ++i;
          continue;
        }
        // The slot now mixes old and new bytes: drop it; the batch below re-inserts the
        // page with exactly what it sends.
        ++counters_.delta_overflows;
        cache_.invalidate(page);
      }
    }

    if (room < kRecordHeaderBytes + page_size) break;
    if (by_reference != nullptr && by_reference->count == PageReferences::kMax) break;
    const std::size_t fits = (room - kRecordHeaderBytes) / page_size;
    batch_fingerprints_[0] = fingerprint;
    const bool deflate = policy.deflate && advisor_.should_deflate();
    const auto count = static_cast<std::uint32_t>(
        batch_length(memory, pages, i, std::min<std::size_t>(batch_pages(deflate), fits)));
    bool referenced = false;
    const std::size_t record = write_batch(memory, page, count, generation, deflate, &out[w], room,
                                           by_reference != nullptr ? &referenced : nullptr);
    if (referenced) {
      by_reference->items[by_reference->count++] =
          PageReference{w + kRecordHeaderBytes, guest, static_cast<std::uint32_t>(record - kRecordHeaderBytes)};
    }
    // The receiver will hold these pages at this generation: later pages with the same
    // bytes may name them.
    for (std::uint32_t k = 0; k < count && duplicates_.enabled(); ++k) {
      if (batch_fingerprints_[k] != kNotLooked) duplicates_.record_sent(batch_fingerprints_[k], page + k, generation);
    }
    w += record;
    i += count;
  }
  progress.stop = i == pages.size() ? EncodeStop::kDone : EncodeStop::kOutputFull;
  return progress;
}

}  // namespace pagewire::pagecodec
