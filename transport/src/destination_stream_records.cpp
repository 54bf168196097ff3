// DestinationStream: the in-order byte stream into records (whole from a frame, or
// assembled across frames), each record checked against the ordering rule and applied to
// guest memory, refused DELTAs asked for again in full (RESEND).
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "pagewire/transport/stream.hpp"

namespace pagewire::transport {

void DestinationStream::deliver(const rte_mbuf* mbuf, PayloadRange payload) {
  counters_.payload_bytes_received += payload.bytes;
  visit_bytes(mbuf, payload.offset, payload.bytes,
              [this](const std::byte* piece, std::size_t bytes) { feed(records_, piece, bytes); });
}

// Feeds stream bytes to the record decoder, record by record (RecordStreamReader: whole
// where they lie, assembled when cut across frames or segments).
void DestinationStream::feed(pagecodec::RecordStreamReader& reader, const std::byte* bytes, std::size_t length) {
  if (!failure_.empty()) return;
  reader.feed({bytes, length}, [this](std::span<const std::byte> first, std::span<const std::byte> rest) {
    process_record(rest.empty() ? decoder_.parse(first) : decoder_.parse(first, rest));
    return failure_.empty();
  });
  if (failure_.empty() && !reader.error().empty()) failure_ = "stream " + std::to_string(index_) + ": " + reader.error();
}

void DestinationStream::process_record(const pagecodec::ParsedRecord& parsed) {
  if (parsed.error != pagecodec::DecodeError::kNone) {
    // The frame passed its checksum, so this is how the sender framed it: the stream
    // cannot be resynchronised.
    failure_ = "stream " + std::to_string(index_) + ": " + std::string(to_string(parsed.error));
    return;
  }
  apply_record(parsed.view);
}

namespace {

// After the pages' bytes: DestinationSession::page_generation() readers on other threads
// (the destination's incremental digest) rely on this order. A plain store on x86.
void publish_generation(std::uint32_t* generations, std::uint32_t count, std::uint32_t generation) {
  for (std::uint32_t k = 0; k < count; ++k) std::atomic_ref(generations[k]).store(generation, std::memory_order_release);
}

}  // namespace

// The ordering rule: never let an older copy overwrite a newer one, and apply a DELTA only
// onto the exact base it was encoded against.
bool DestinationStream::apply_record(const pagecodec::RecordView& record) {
  if (!may_apply(record)) return false;
  std::uint32_t* generations = page_generations_ + record.first_page;
  const pagecodec::DecodeError applied = write_record(record);
  if (applied != pagecodec::DecodeError::kNone) {
    ++counters_.record_errors;
    // The pages hold unspecified bytes now: no DELTA may build on them, and they must come
    // again in full.
    publish_generation(generations, record.page_count, 0);
    refuse(record.first_page, record.page_count);
    return false;
  }
  publish_generation(generations, record.page_count, record.generation);
  newest_generation_ = std::max(newest_generation_, record.generation);
  if (!asked_.empty()) forget_asked(record.first_page, record.page_count);
  if (!refused_.empty() && record.encoding != pagecodec::Encoding::kDelta) {
    std::erase_if(refused_, [&](std::uint64_t page) {
      return page >= record.first_page && page < record.first_page + record.page_count;
    });
  }
  return true;
}

// Into the region, telling the observer; in postcopy into the bounce buffer, for the
// observer to place (ZERO needs no bytes). Only pages written whole are told of.
pagecodec::DecodeError DestinationStream::write_record(const pagecodec::RecordView& record) {
  if (!placing()) {
    const pagecodec::DecodeError applied = decoder_.apply(record, *memory_);
    if (applied == pagecodec::DecodeError::kNone && applied_pages_ != nullptr) {
      applied_pages_->pages_written(record.first_page, record.page_count);
    }
    return applied;
  }
  const std::byte* bytes = nullptr;
  if (record.encoding != pagecodec::Encoding::kZero) {
    const pagecodec::DecodeError decoded = decoder_.apply_into(record, bounce_);
    if (decoded != pagecodec::DecodeError::kNone) return decoded;
    bytes = bounce_.data();
  }
  applied_pages_->pages_arrived(record.first_page, record.page_count, bytes);
  return pagecodec::DecodeError::kNone;
}

bool DestinationStream::may_apply(const pagecodec::RecordView& record) {
  if (record.first_page < first_page_ || record.first_page + record.page_count > end_page_) {
    ++counters_.record_errors;  // another stream's pages: a sender bug or a forgery
    return false;
  }
  std::uint32_t* generations = page_generations_ + record.first_page;
  auto generation_of = [&](std::uint32_t k) {
    // Relaxed: only DestinationSession::forget_page() writes here from another thread.
    return std::atomic_ref(generations[k]).load(std::memory_order_relaxed);
  };
  if (pagecodec::builds_on_held(record.encoding) && placing()) {
    ++counters_.record_errors;  // postcopy: what it builds on is the guest's now, or gone
    refuse(record.first_page, 1);
    return false;
  }
  if (record.encoding == pagecodec::Encoding::kDelta) {
    if (generation_of(0) > record.generation) {
      ++counters_.stale_records;  // a newer copy came first (applied on arrival, ahead of a hole)
      return false;
    }
    if (generation_of(0) == record.base_generation) return true;
    ++counters_.delta_base_mismatch;
    refuse(record.first_page, 1);
    return false;
  }
  if (record.encoding == pagecodec::Encoding::kCopy) return may_copy(record, generation_of(0));
  for (std::uint32_t k = 0; k < record.page_count; ++k) {
    if (generation_of(k) > record.generation) {
      ++counters_.stale_records;
      return false;
    }
  }
  return true;
}

// Another stream's page may be changing under its own core: only our own pages, and only
// the version of the source page the sender compared with.
bool DestinationStream::may_copy(const pagecodec::RecordView& record, std::uint32_t held_generation) {
  if (record.copy_source < first_page_ || record.copy_source >= end_page_) {
    ++counters_.record_errors;
    return false;
  }
  if (held_generation > record.generation) {
    ++counters_.stale_records;
    return false;
  }
  const std::uint32_t source_generation =
      std::atomic_ref(page_generations_[record.copy_source]).load(std::memory_order_relaxed);
  if (source_generation == record.base_generation) return true;
  ++counters_.copy_source_mismatch;
  refuse(record.first_page, 1);
  return false;
}

void DestinationStream::refuse(std::uint64_t first_page, std::uint32_t count) {
  for (std::uint64_t page = first_page; page < first_page + count; ++page) {
    if (std::find(refused_.begin(), refused_.end(), page) != refused_.end()) continue;
    if (refused_.size() == kMaxRefusedPages) {
      failure_ = "stream " + std::to_string(index_) + ": more than " + std::to_string(kMaxRefusedPages) +
                 " pages refused and waiting to be sent again";
      return;
    }
    refused_.push_back(page);
  }
  resend_due_tsc_ = 0;  // ask at once
}

bool DestinationStream::send_page_list(FrameType type, std::span<const std::uint64_t> pages) {
  return send(FrameFields{.type = type, .stream = index_, .session = session_}, [&](std::byte* payload) {
    const std::size_t room = (payload_for_mtu(kMinPathMtu, true) - sizeof(ResendPayload)) / sizeof(std::uint64_t);
    const std::size_t count = std::min(pages.size(), room);
    ResendPayload header{};
    header.count.set(static_cast<std::uint16_t>(count));
    std::memcpy(payload, &header, sizeof header);
    for (std::size_t i = 0; i < count; ++i) {
      le64 page;
      page.set(pages[i]);
      std::memcpy(payload + sizeof header + i * sizeof page, &page, sizeof page);
    }
    return static_cast<std::uint16_t>(sizeof header + count * sizeof(le64));
  });
}

// Asks for every refused page, again every 10 ms (the minimum RTO) until they arrive.
void DestinationStream::send_resend(std::uint64_t now) {
  if (!send_page_list(FrameType::kResend, refused_)) return;
  ++counters_.resend_requests;
  resend_due_tsc_ = now + tsc_hz_ / 100;
}

void DestinationStream::begin_postcopy(rte_ring* requests) {
  requests_ = requests;
  pre_postcopy_generation_ = newest_generation_;
  bounce_.resize(max_record_bytes_);
  asked_.reserve(kMaxAskedPages);
}

// A fault waits for this: new pages are asked for in the poll that finds them. The ring
// holds pages of this stream only (DestinationSession::request_page); a page asked for
// twice is listed once.
void DestinationStream::forward_page_requests(std::uint64_t now) {
  bool fresh = false;
  std::uint64_t page = 0;
  while (asked_.size() < kMaxAskedPages && rte_ring_dequeue_elem(requests_, &page, sizeof page) == 0) {
    if (page < first_page_ || page >= end_page_) continue;
    // Arrived since the fault was reported: nothing to ask for.
    if (std::atomic_ref(page_generations_[page]).load(std::memory_order_relaxed) > pre_postcopy_generation_) continue;
    if (std::find(asked_.begin(), asked_.end(), page) != asked_.end()) continue;
    asked_.push_back(page);
    ++counters_.pages_requested;
    fresh = true;
  }
  if (asked_.empty() || (!fresh && now < ask_again_tsc_)) return;
  if (!send_page_list(FrameType::kPageRequest, asked_)) return;
  ++counters_.page_requests;
  ask_again_tsc_ = now + tsc_hz_ * std::max<std::uint32_t>(tuning_.min_rto_us, 1000) / 1000000;
}

void DestinationStream::forget_asked(std::uint64_t first_page, std::uint32_t count) {
  std::erase_if(asked_, [&](std::uint64_t page) { return page >= first_page && page < first_page + count; });
}

}  // namespace pagewire::transport
