// DestinationStream: frames after a hole applied as they arrive, once a run of them is whole
// records, instead of held until the hole fills. A hole lasts an RTT and more; on a fast path
// the hundreds of frames held behind it were applied later from memory gone cold, which
// cost a tenth of the goodput at 1 % loss (docs/benchmarks.md).
#include <rte_mbuf.h>

#include <array>

#include "pagewire/transport/stream.hpp"

namespace pagewire::transport {

namespace {

// A 16-page DEFLATE batch at MTU 1500 spans about 46 frames; a longer run waits its turn.
constexpr std::uint32_t kMaxRunFrames = 64;

// Consecutive frames' payloads, read as the one byte stream they carry.
struct FrameRun {
  std::array<const rte_mbuf*, kMaxRunFrames> frames{};
  std::array<PayloadRange, kMaxRunFrames> payloads{};
  std::uint32_t count = 0;
  std::size_t bytes = 0;

  void add(const rte_mbuf* frame, PayloadRange payload) {
    frames[count] = frame;
    payloads[count] = payload;
    ++count;
    bytes += payload.bytes;
  }
  // Copies the `length` bytes at `at` of the joined payloads (within them) into `out`.
  void copy(std::size_t at, std::size_t length, std::byte* out) const {
    for (std::uint32_t i = 0; length > 0 && i < count; ++i) {
      if (at >= payloads[i].bytes) {
        at -= payloads[i].bytes;
        continue;
      }
      const std::size_t take = std::min<std::size_t>(length, payloads[i].bytes - at);
      copy_bytes(frames[i], payloads[i].offset + static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(take), out);
      out += take;
      length -= take;
      at = 0;
    }
  }
};

}  // namespace

// The run around `seq` goes from a frame that starts records to one that ends them, every
// frame of it here. The end is looked for first: frames mostly come in order, so the frame
// after one that does not end its records is seldom here yet, and the check stops at once.
// The run is applied only if the sender's flags hold (the records' lengths tile it) and it
// has no COPY: the page a COPY names may have been sent in this round, in the hole. Each
// record passes the ordering rule as it would in order: a copy older than what the page
// holds is stale, and a DELTA's base is its page's content from an earlier round (a stream
// finishes a round, everything acknowledged, before it starts the next), checked exactly.
bool DestinationStream::apply_ahead(std::uint32_t seq, const rte_mbuf* frame, PayloadRange payload,
                                    std::uint16_t record_bounds) {
  if (!failure_.empty()) return false;
  std::uint32_t last = seq;
  for (std::uint16_t bounds = record_bounds; (bounds & kFrameRecordEnd) == 0;) {
    const rte_mbuf* after = receive_window_.held_at(last + 1);
    if (after == nullptr || last - seq + 1 >= kMaxRunFrames) return false;
    ++last;
    bounds = held_record_bounds(after);
  }
  std::uint32_t first = seq;
  for (std::uint16_t bounds = record_bounds; (bounds & kFrameRecordStart) == 0;) {
    const rte_mbuf* before = receive_window_.held_at(first - 1);
    if (before == nullptr || last - first + 1 >= kMaxRunFrames) return false;
    --first;
    bounds = held_record_bounds(before);
  }
  FrameRun run;
  for (std::uint32_t s = first; s != last + 1; ++s) {
    const rte_mbuf* held = s == seq ? frame : receive_window_.held_at(s);
    run.add(held, s == seq ? payload : held_payload(held));
  }
  const bool whole = pagecodec::RecordStreamReader::whole_records(
      run.bytes, [&](std::size_t at, std::byte* header) { run.copy(at, pagecodec::kRecordHeaderBytes, header); },
      [](pagecodec::Encoding encoding) { return encoding != pagecodec::Encoding::kCopy; });
  if (!whole) return false;
  for (std::uint32_t i = 0; i < run.count; ++i) {
    visit_bytes(run.frames[i], run.payloads[i].offset, run.payloads[i].bytes,
                [this](const std::byte* piece, std::size_t bytes) { feed(ahead_records_, piece, bytes); });
  }
  for (std::uint32_t s = first; s != last + 1; ++s) {
    if (s == seq) {
      receive_window_.applied_ahead(seq);
    } else {
      rte_pktmbuf_free(receive_window_.applied_held(s));
    }
  }
  counters_.applied_ahead += run.count;
  counters_.payload_bytes_received += run.bytes;
  return true;
}

}  // namespace pagewire::transport
