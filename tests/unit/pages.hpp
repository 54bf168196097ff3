// Page contents for the codec tests: every kind of page a guest has, from a fixed seed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace pagewire::test {

using Bytes = std::vector<std::byte>;

enum class PageKind { kZero, kText, kBinary, kRandom, kAlternating, kSparse };

inline const char* to_string(PageKind kind) {
  switch (kind) {
    case PageKind::kZero: return "zero";
    case PageKind::kText: return "text";
    case PageKind::kBinary: return "binary";
    case PageKind::kRandom: return "random";
    case PageKind::kAlternating: return "alternating";
    case PageKind::kSparse: return "sparse";
  }
  return "?";
}

inline void fill_page(std::byte* page, std::size_t size, PageKind kind, std::mt19937_64& rng) {
  static constexpr const char* kWords[] = {"migration ", "page ", "dirty ", "round ",
                                           "switchover ", "the ", "guest ", "memory\n"};
  switch (kind) {
    case PageKind::kZero:
      std::memset(page, 0, size);
      break;
    case PageKind::kText:
      for (std::size_t i = 0; i < size;) {
        const char* word = kWords[rng() % 8];
        for (std::size_t k = 0; word[k] != '\0' && i < size; ++k) page[i++] = std::byte(word[k]);
      }
      break;
    case PageKind::kBinary:  // small integers and pointers, like a heap
      for (std::size_t i = 0; i + 8 <= size; i += 8) {
        const std::uint64_t v = rng() % 4 == 0 ? 0x00007f0000000000ull | (rng() & 0xfffff8)
                                               : rng() % 256;
        std::memcpy(page + i, &v, 8);
      }
      break;
    case PageKind::kRandom:
      for (std::size_t i = 0; i < size; ++i) page[i] = std::byte(rng());
      break;
    case PageKind::kAlternating:
      for (std::size_t i = 0; i < size; ++i) page[i] = std::byte(i % 2 == 0 ? 0xaa : 0x55);
      break;
    case PageKind::kSparse:
      std::memset(page, 0, size);
      for (int n = 0; n < 8; ++n) page[rng() % size] = std::byte(1 + rng() % 255);
      break;
  }
}

inline Bytes make_page(std::size_t size, PageKind kind, std::uint64_t seed) {
  Bytes page(size);
  std::mt19937_64 rng(seed);
  fill_page(page.data(), size, kind, rng);
  return page;
}

// Changes `runs` runs of bytes, `run_bytes` long each, at random offsets (each byte flipped,
// so every byte in a run really changes).
inline void dirty_runs(std::byte* page, std::size_t size, int runs, std::size_t run_bytes,
                       std::mt19937_64& rng) {
  for (int r = 0; r < runs; ++r) {
    const std::size_t start = rng() % (size - run_bytes + 1);
    for (std::size_t k = 0; k < run_bytes; ++k) page[start + k] ^= std::byte{0xff};
  }
}

inline std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    const char* env = std::getenv("PAGEWIRE_TEST_SEED");
    return env != nullptr ? std::stoull(env) : std::random_device{}();
  }();
  return seed;
}

}  // namespace pagewire::test
