#include "pagewire/bench/cost_model.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/sim/mapped_memory.hpp"
#include "pagewire/transport/frame_crypto.hpp"
#include "median.hpp"

namespace pagewire::bench {

namespace {

using Clock = std::chrono::steady_clock;

// Encodes `pages` of `memory` into `out` (grown as needed); returns the seconds it took.
Result<double> encode_all(pagecodec::Encoder& encoder, const pagecodec::PageMap& memory, std::span<const std::uint64_t> pages,
                          std::uint32_t generation, std::vector<std::byte>& out) {
  out.resize(std::max<std::size_t>(out.size(), pages.size() * (encoder.config().page_size + 64) + (1 << 20)));
  std::size_t used = 0;
  const auto start = Clock::now();
  while (!pages.empty()) {
    const auto progress = encoder.encode(memory, pages, generation, {out.data() + used, out.size() - used});
    if (progress.stop == pagecodec::EncodeStop::kPageOutOfRange) return make_error("cost model: page out of range");
    used += progress.bytes_written;
    pages = pages.subspan(progress.pages_consumed);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  out.resize(used);
  return seconds;
}

Result<double> decode_all(pagecodec::Decoder& decoder, std::span<const std::byte> records, const pagecodec::PageMap& memory) {
  const auto start = Clock::now();
  std::size_t applied = 0;
  if (decoder.decode_all(records, memory, &applied) != pagecodec::DecodeError::kNone) {
    return make_error("cost model: the decoder refused its own encoder's records");
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

Result<std::vector<StageCost>> measure_stage_costs(const CostModelOptions& options, std::ostream& progress) {
  const std::uint64_t pages = options.sample_bytes / options.page_size;
  auto source = sim::MappedMemory::allocate(options.sample_bytes);
  auto destination = sim::MappedMemory::allocate(options.sample_bytes);
  if (!source || !destination) return make_error("cost model: cannot map " + std::to_string(options.sample_bytes >> 20) +
                                                  " MiB samples");
  const auto source_pages = pagecodec::PageMap::contiguous(source->data(), pages, options.page_size);
  const auto destination_pages = pagecodec::PageMap::contiguous(destination->data(), pages, options.page_size);
  std::vector<std::uint64_t> all(pages);
  std::iota(all.begin(), all.end(), 0);
  std::vector<StageCost> costs;
  std::vector<std::byte> first, second, dirty;
  for (const sim::ImageProfile profile : options.profiles) {
    for (const auto& name : options.policies) {
      auto policy = pagecodec::policy_named(name);
      if (!policy) return policy.error();
      progress << "  " << to_string(profile) << ", " << name << std::endl;
      const pagecodec::EncoderConfig config{.page_size = options.page_size, .region_pages = pages,
                                            .delta_cache_bytes = options.sample_bytes, .policy = *policy};
      std::vector<double> encode_first, decode_first, encode_dirty, decode_dirty;
      std::size_t first_bytes = 0, dirty_bytes = 0, dirty_pages = 0;
      for (int r = 0; r < options.repeats; ++r) {
        // A fresh image each repeat: the dirty round below writes into it.
        if (auto filled = sim::fill_image({source->data(), source->size()}, options.page_size, profile, 1); !filled) {
          return filled.error();
        }
        auto encoder = pagecodec::Encoder::create(config);
        auto decoder = pagecodec::Decoder::create(options.page_size, pages);
        if (!encoder) return encoder.error();
        if (!decoder) return decoder.error();
        auto encoded = encode_all(*encoder, source_pages, all, 1, first);
        if (!encoded) return encoded.error();
        auto decoded = decode_all(*decoder, first, destination_pages);
        if (!decoded) return decoded.error();
        encode_first.push_back(*encoded / static_cast<double>(pages) * 1e9);
        decode_first.push_back(*decoded / static_cast<double>(pages) * 1e9);
        first_bytes = first.size();
        // The delta cache takes a page on its second send: send everything again, untimed.
        auto again = encode_all(*encoder, source_pages, all, 2, second);
        if (!again) return again.error();
        if (auto applied = decode_all(*decoder, second, destination_pages); !applied) return applied.error();
        // The guest writes 64 bytes into a share of the pages; those go again.
        std::mt19937_64 random(7);
        std::vector<std::uint64_t> written;
        for (std::uint64_t p = 0; p < pages; ++p) {
          if (std::uniform_real_distribution<double>(0, 1)(random) >= options.dirty_fraction) continue;
          std::byte* at = source->data() + p * options.page_size + random() % (options.page_size - 64);
          for (int b = 0; b < 64; ++b) at[b] = std::byte(random());
          written.push_back(p);
        }
        auto encoded_dirty = encode_all(*encoder, source_pages, written, 3, dirty);
        if (!encoded_dirty) return encoded_dirty.error();
        auto decoded_dirty = decode_all(*decoder, dirty, destination_pages);
        if (!decoded_dirty) return decoded_dirty.error();
        if (std::memcmp(source->data(), destination->data(), options.sample_bytes) != 0) {
          return make_error("cost model: the decoded sample differs from the source");
        }
        encode_dirty.push_back(*encoded_dirty / static_cast<double>(written.size()) * 1e9);
        decode_dirty.push_back(*decoded_dirty / static_cast<double>(written.size()) * 1e9);
        dirty_bytes = dirty.size();
        dirty_pages = written.size();
      }
      const std::string profile_name(to_string(profile));
      costs.push_back({.profile = profile_name, .policy = name, .round = "first",
                       .encode_ns_per_page = median(encode_first), .decode_ns_per_page = median(decode_first),
                       .wire_bytes_per_page = static_cast<double>(first_bytes) / static_cast<double>(pages)});
      costs.push_back({.profile = profile_name, .policy = name, .round = "dirty",
                       .encode_ns_per_page = median(encode_dirty), .decode_ns_per_page = median(decode_dirty),
                       .wire_bytes_per_page = static_cast<double>(dirty_bytes) / static_cast<double>(dirty_pages)});
    }
  }
  return costs;
}

CoresNeeded cores_for(const StageCost& cost, double transport_ns_per_byte, double memory_gbps, std::uint32_t page_size) {
  const double pages_per_second = memory_gbps * 1e9 / 8 / page_size;
  const double transport_ns = transport_ns_per_byte * cost.wire_bytes_per_page;
  return {.source = pages_per_second * (cost.encode_ns_per_page + transport_ns) / 1e9,
          .destination = pages_per_second * (transport_ns + cost.decode_ns_per_page) / 1e9,
          .wire_gbps = pages_per_second * cost.wire_bytes_per_page * 8 / 1e9};
}

void print_cost_table(const std::vector<StageCost>& costs, const CostModelOptions& options, std::ostream& out) {
  out << "per page on one core (medians of " << options.repeats << "); transport "
      << std::setprecision(3) << options.transport_ns_per_byte << " ns per wire byte per side\n"
      << "cores needed per side to migrate memory at 25 / 40 / 100 Gbit/s, and the wire rate that takes\n";
  out << std::left << std::setw(10) << "profile" << std::setw(9) << "policy" << std::setw(7) << "round" << std::right
      << std::setw(10) << "enc ns" << std::setw(10) << "dec ns" << std::setw(10) << "wire B" << std::setw(7) << "ratio"
      << "   " << std::left << std::setw(34) << "source cores 25/40/100" << std::setw(30) << "dest cores 25/40/100"
      << "wire Gbit/s at 25/40/100\n";
  for (const auto& cost : costs) {
    out << std::left << std::setw(10) << cost.profile << std::setw(9) << cost.policy << std::setw(7) << cost.round
        << std::right << std::fixed << std::setprecision(0) << std::setw(10) << cost.encode_ns_per_page << std::setw(10)
        << cost.decode_ns_per_page << std::setw(10) << cost.wire_bytes_per_page << std::setprecision(2) << std::setw(7)
        << options.page_size / std::max(cost.wire_bytes_per_page, 1.0) << "   ";
    std::string source, destination, guest;
    for (double link : {25.0, 40.0, 100.0}) {
      const CoresNeeded need = cores_for(cost, options.transport_ns_per_byte, link, options.page_size);
      std::ostringstream s, d, g;
      s << std::fixed << std::setprecision(1) << need.source;
      d << std::fixed << std::setprecision(1) << need.destination;
      g << std::fixed << std::setprecision(1) << need.wire_gbps;
      source += (source.empty() ? "" : " / ") + s.str();
      destination += (destination.empty() ? "" : " / ") + d.str();
      guest += (guest.empty() ? "" : " / ") + g.str();
    }
    out << std::left << std::setw(34) << source << std::setw(30) << destination << guest << "\n";
  }
}

std::vector<SealCost> measure_seal_costs(std::size_t payload_bytes, int repeats) {
  using namespace transport;
  constexpr std::size_t kFrames = 2048;  // 18 MB at MTU 9000: well past the caches
  std::vector<std::byte> payloads(kFrames * payload_bytes), copies(payloads.size());
  std::mt19937_64 rng(3);
  for (auto& byte : payloads) byte = static_cast<std::byte>(rng());
  std::fill(copies.begin(), copies.end(), std::byte{0});  // pre-faulted, like the payloads
  std::vector<FrameHeader> headers(kFrames);
  std::vector<SealTrailer> trailers(kFrames);
  for (std::size_t f = 0; f < kFrames; ++f) {
    headers[f].magic.set(kFrameMagic);
    headers[f].type = static_cast<std::uint8_t>(FrameType::kData);
    headers[f].seq.set(static_cast<std::uint32_t>(f));
    headers[f].payload_bytes.set(static_cast<std::uint16_t>(payload_bytes));
    headers[f].flags.set(kFrameSealed);
  }
  const double bytes = static_cast<double>(payloads.size());
  auto ns_per_byte = [&](auto&& pass) {
    const auto start = Clock::now();
    pass();
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / bytes;
  };
  std::vector<SealCost> costs;
  for (bool encrypt : {false, true}) {
    const SessionKeys keys =
        derive_session_keys(PreSharedKey::generate(), 1, random_nonce(), random_nonce(), encrypt);
    auto source = FrameCrypto::create(keys, FrameCrypto::Side::kSource);
    auto destination = FrameCrypto::create(keys, FrameCrypto::Side::kDestination);
    if (!source || !destination) continue;
    std::vector<double> seal, open, copy;
    for (int r = 0; r < repeats; ++r) {
      copy.push_back(ns_per_byte([&] { std::memcpy(copies.data(), payloads.data(), payloads.size()); }));
      seal.push_back(ns_per_byte([&] {
        for (std::size_t f = 0; f < kFrames; ++f) {
          source->seal(headers[f], {payloads.data() + f * payload_bytes, payload_bytes}, &trailers[f]);
        }
      }));
      bool all_opened = true;
      open.push_back(ns_per_byte([&] {
        for (std::size_t f = 0; f < kFrames; ++f) {
          std::byte* payload = payloads.data() + f * payload_bytes;
          all_opened &= destination->open(headers[f], {payload, payload_bytes}, payload, trailers[f], true) ==
                        OpenOutcome::kOk;
        }
      }));
      if (!all_opened) return {};  // a broken seal measures nothing
    }
    costs.push_back({.mode = encrypt ? "encrypted" : "authenticated",
                     .seal_ns_per_byte = median(seal),
                     .open_ns_per_byte = median(open),
                     .memcpy_ns_per_byte = median(copy)});
  }
  return costs;
}

void print_seal_costs(const std::vector<SealCost>& costs, std::size_t payload_bytes, std::ostream& out) {
  out << "sealing frames, AES-256-GCM (OpenSSL), " << payload_bytes
      << "-byte payloads in place, one core; memcpy of the same bytes in the same passes\n"
      << std::left << std::setw(15) << "mode" << std::right << std::setw(12) << "seal GB/s" << std::setw(12)
      << "open GB/s" << std::setw(13) << "memcpy GB/s" << std::setw(16) << "seal/memcpy"
      << "   extra cores at 25 / 40 / 100 Gbit/s wire (seal, open)\n";
  for (const auto& c : costs) {
    out << std::left << std::setw(15) << c.mode << std::right << std::fixed << std::setprecision(2) << std::setw(12)
        << 1 / c.seal_ns_per_byte << std::setw(12) << 1 / c.open_ns_per_byte << std::setw(13)
        << 1 / c.memcpy_ns_per_byte << std::setw(15) << c.memcpy_ns_per_byte / c.seal_ns_per_byte << "x   ";
    for (double wire : {25.0, 40.0, 100.0}) {
      out << (wire == 25.0 ? "" : " / ") << std::setprecision(1) << c.seal_cores(wire) << ", " << c.open_cores(wire);
    }
    out << "\n";
  }
}

}  // namespace pagewire::bench
