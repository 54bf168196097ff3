// The vectorised delta encoder: 64 bytes per step, two AVX2 compares folded into one 64-bit
// "changed" mask. Run boundaries are the mask's edges; a step with no edge (all unchanged,
// or inside one long changed run) costs four loads and two compares, so a page that barely
// changed is scanned at memory speed.
#include <immintrin.h>

#include <cstring>

#include "pagewire/pagecodec/xbzrle.hpp"
#include "uleb128.hpp"

namespace pagewire::pagecodec::xbzrle {

namespace {

// Emits one (unchanged, changed) pair; the changed bytes come from the cache, which already
// holds exactly what was read from the guest page.
inline bool emit_run(std::span<std::byte> out, std::size_t* written, const std::byte* cache,
                     std::size_t unchanged_start, std::size_t changed_start,
                     std::size_t changed_end) {
  const std::size_t changed = changed_end - changed_start;
  if (*written + 2 * kMaxUlebBytes + changed > out.size()) return false;
  std::size_t n = *written;
  n += uleb128::put(&out[n], static_cast<std::uint32_t>(changed_start - unchanged_start));
  n += uleb128::put(&out[n], static_cast<std::uint32_t>(changed));
  std::memcpy(&out[n], cache + changed_start, changed);
  *written = n + changed;
  return true;
}

}  // namespace

__attribute__((target("avx2,bmi"))) std::size_t encode_avx2(const std::byte* current,
                                                             std::byte* cache,
                                                             std::size_t page_size,
                                                             std::span<std::byte> out) {
  constexpr std::size_t kStep = 64;
  std::size_t written = 0;
  std::size_t unchanged_start = 0;
  std::size_t changed_start = 0;
  bool in_changed = false;
  std::uint64_t previous_changed = 0;  // bit 0: the byte before this step was changed

  for (std::size_t base = 0; base < page_size; base += kStep) {
    const auto* cur = reinterpret_cast<const __m256i*>(current + base);
    auto* old = reinterpret_cast<__m256i*>(cache + base);
    const __m256i c0 = _mm256_loadu_si256(cur);
    const __m256i c1 = _mm256_loadu_si256(cur + 1);
    const auto equal0 = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(c0, _mm256_loadu_si256(old))));
    const auto equal1 = static_cast<std::uint32_t>(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(c1, _mm256_loadu_si256(old + 1))));
    const std::uint64_t changed = ~((static_cast<std::uint64_t>(equal1) << 32) | equal0);
    if (changed != 0) {
      // Unchanged lanes store what the cache already holds; changed lanes store the bytes
      // this very compare saw, which is what gets emitted.
      _mm256_storeu_si256(old, c0);
      _mm256_storeu_si256(old + 1, c1);
    }
    std::uint64_t edges = changed ^ ((changed << 1) | previous_changed);
    previous_changed = changed >> 63;
    while (edges != 0) {
      const std::size_t position = base + static_cast<std::size_t>(__builtin_ctzll(edges));
      edges &= edges - 1;
      if (!in_changed) {
        changed_start = position;
      } else {
        if (!emit_run(out, &written, cache, unchanged_start, changed_start, position)) {
          return kOverflow;
        }
        unchanged_start = position;
      }
      in_changed = !in_changed;
    }
  }
  if (in_changed &&
      !emit_run(out, &written, cache, unchanged_start, changed_start, page_size)) {
    return kOverflow;
  }
  return written;
}

EncodeFn best_encoder() {
  static const EncodeFn chosen = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") ? &encode_avx2
                                                                            : &encode_scalar;
  }();
  return chosen;
}

const char* best_encoder_name() { return best_encoder() == &encode_avx2 ? "avx2" : "scalar"; }

}  // namespace pagewire::pagecodec::xbzrle
