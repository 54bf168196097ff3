// The benchmark corpora: pages of one documented kind each, reproducible on any Debian 12
// machine. Text and binary pages come from files the machine has (sorted paths, so the
// same packages give the same bytes); random pages from a fixed seed.
#pragma once

#include <cstdint>
#include <string_view>

#include "pagewire/result.hpp"
#include "pagewire/sim/mapped_memory.hpp"

namespace pagewire::sim {

enum class CorpusKind {
  kZero,    // all zero pages
  kText,    // /usr/share/common-licenses, /usr/include: C headers and licence text
  kBinary,  // /usr/lib/x86_64-linux-gnu shared objects: code and data sections
  kRandom,  // mt19937_64, seed 42: incompressible
  kMix,     // per page, seeded: 30% zero, 30% text, 30% binary, 10% random, roughly the
            // zero share of a booted Linux guest measured here
};

inline constexpr CorpusKind kAllCorpora[] = {CorpusKind::kZero, CorpusKind::kText,
                                             CorpusKind::kBinary, CorpusKind::kRandom,
                                             CorpusKind::kMix};

std::string_view to_string(CorpusKind kind);

// A pre-faulted region of `bytes` (a multiple of page_size) filled with `kind`.
Result<MappedMemory> make_corpus(CorpusKind kind, std::size_t bytes, std::uint32_t page_size);

}  // namespace pagewire::sim
