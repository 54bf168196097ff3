// libFuzzer target for the frame parser: any bytes as a received frame, in an mbuf laid
// out as a PMD would (no EAL needed: parse_frame only reads the mbuf's data fields). Every
// accepted frame's payload and seal trailer must lie inside the frame; opening it with a
// session key (in place: the mbuf is ours alone) must refuse forgeries without touching
// memory outside the frame.
#include <rte_mbuf.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "pagewire/transport/frame.hpp"

using namespace pagewire::transport;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 9216 + 14) return 0;
  alignas(64) static std::uint8_t buffer[RTE_PKTMBUF_HEADROOM + 9216 + 64];
  std::memcpy(buffer + RTE_PKTMBUF_HEADROOM, data, size);
  rte_mbuf mbuf{};
  mbuf.buf_addr = buffer;
  mbuf.data_off = RTE_PKTMBUF_HEADROOM;
  mbuf.data_len = static_cast<std::uint16_t>(size);
  mbuf.pkt_len = static_cast<std::uint32_t>(size);
  mbuf.nb_segs = 1;
  mbuf.buf_len = sizeof buffer;
  rte_mbuf_refcnt_set(&mbuf, 1);
  static FrameCrypto crypto = std::move(FrameCrypto::create(
      derive_session_keys(PreSharedKey::generate(), 1, random_nonce(), random_nonce(), true),
      FrameCrypto::Side::kDestination)).value();

  for (bool checksum : {true, false}) {
    Path path{};
    // The addresses the fuzzer must hit to get deeper: what a seed frame carries.
    path.local = Endpoint{{{0x02, 0, 0, 0, 0, 2}}, 0x0a000002, 47000};
    path.peer = Endpoint{{{0x02, 0, 0, 0, 0, 1}}, 0x0a000001, 47000};
    path.udp_checksum = checksum;
    ReceivedFrame frame = parse_frame(&mbuf, path, 4, 0);
    if (frame.drop == FrameDrop::kNone) {
      const auto* begin = buffer + RTE_PKTMBUF_HEADROOM;
      const auto* payload = reinterpret_cast<const std::uint8_t*>(frame.payload);
      if (payload != begin + frame.payload_offset || payload + frame.payload_bytes > begin + size) std::abort();
      const bool sealed = frame.sealed;
      if (sealed && payload + frame.payload_bytes + sizeof(SealTrailer) > begin + size) std::abort();
      if (!checksum) {  // the last pass: opening decrypts in place
        rte_mbuf* held = &mbuf;
        const FrameDrop drop = open_frame(&held, &frame, &crypto, nullptr);
        // Only the handshake's own frames pass unsealed; nothing forged passes sealed.
        if (drop == FrameDrop::kNone && (sealed || held != &mbuf)) std::abort();
      }
    }
  }

  // The same bytes as a two-segment chain (RX scatter), cut where the last byte says: every
  // piece of an accepted payload must lie inside one of the two buffers.
  if (size < 2) return 0;
  const std::size_t cut = 1 + data[size - 1] * 37u % (size - 1);
  alignas(64) static std::uint8_t tail_buffer[RTE_PKTMBUF_HEADROOM + 9216 + 64];
  std::memcpy(buffer + RTE_PKTMBUF_HEADROOM, data, cut);
  std::memcpy(tail_buffer + RTE_PKTMBUF_HEADROOM, data + cut, size - cut);
  rte_mbuf tail{};
  tail.buf_addr = tail_buffer;
  tail.data_off = RTE_PKTMBUF_HEADROOM;
  tail.data_len = static_cast<std::uint16_t>(size - cut);
  tail.buf_len = sizeof tail_buffer;
  tail.nb_segs = 1;
  rte_mbuf_refcnt_set(&tail, 1);
  mbuf.data_len = static_cast<std::uint16_t>(cut);
  mbuf.nb_segs = 2;
  mbuf.next = &tail;
  Path path{};
  path.local = Endpoint{{{0x02, 0, 0, 0, 0, 2}}, 0x0a000002, 47000};
  path.peer = Endpoint{{{0x02, 0, 0, 0, 0, 1}}, 0x0a000001, 47000};
  ReceivedFrame frame = parse_frame(&mbuf, path, 4, 0);
  if (frame.drop == FrameDrop::kNone) {
    auto inside = [](const std::uint8_t* at, std::size_t bytes, const std::uint8_t* first, std::size_t length) {
      return at >= first && at + bytes <= first + length;
    };
    visit_bytes(&mbuf, frame.payload_offset, frame.payload_bytes, [&](const std::byte* piece, std::size_t bytes) {
      const auto* at = reinterpret_cast<const std::uint8_t*>(piece);
      if (!inside(at, bytes, buffer + RTE_PKTMBUF_HEADROOM, cut) &&
          !inside(at, bytes, tail_buffer + RTE_PKTMBUF_HEADROOM, size - cut)) {
        std::abort();
      }
    });
    rte_mbuf* held = &mbuf;
    const FrameDrop drop = open_frame(&held, &frame, &crypto, nullptr);
    if (drop == FrameDrop::kNone && (frame.sealed || held != &mbuf)) std::abort();
  }
  return 0;
}
