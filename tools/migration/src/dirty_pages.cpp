#include "pagewire/migration/dirty_pages.hpp"

#include <string>

namespace pagewire::migration {

namespace {

Error outside(std::uint64_t first_page, std::uint64_t count, std::uint64_t pages) {
  return make_error("dirty tracking reported pages " + std::to_string(first_page) + ".." +
                    std::to_string(first_page + count - 1) + ", outside the guest's " + std::to_string(pages) +
                    " pages");
}

}  // namespace

Status DirtyPages::mark(std::uint64_t page) { return mark_range(page, 1); }

Status DirtyPages::mark_range(std::uint64_t first_page, std::uint64_t count) {
  if (count == 0) return Ok{};
  if (first_page >= pages_ || count > pages_ - first_page) return outside(first_page, count, pages_);
  for (std::uint64_t p = first_page; p < first_page + count; ++p) words_[p / 64] |= std::uint64_t{1} << (p % 64);
  return Ok{};
}

Status DirtyPages::merge_bitmap(std::uint64_t first_page, std::span<const std::uint64_t> words,
                                std::uint64_t pages) {
  if (pages > words.size() * 64) {
    return make_error("dirty bitmap of " + std::to_string(words.size()) + " words cannot hold " +
                      std::to_string(pages) + " pages");
  }
  if (pages == 0) return Ok{};
  if (first_page >= pages_ || pages > pages_ - first_page) return outside(first_page, pages, pages_);
  const unsigned shift = first_page % 64;
  for (std::uint64_t w = 0; w * 64 < pages; ++w) {
    std::uint64_t bits = words[w];
    const std::uint64_t left = pages - w * 64;
    if (left < 64) bits &= (std::uint64_t{1} << left) - 1;
    if (bits == 0) continue;
    const std::uint64_t at = first_page / 64 + w;
    words_[at] |= bits << shift;
    if (shift != 0 && (bits >> (64 - shift)) != 0) words_[at + 1] |= bits >> (64 - shift);
  }
  return Ok{};
}

void DirtyPages::drain(std::vector<std::uint64_t>* out) {
  for (std::size_t w = 0; w < words_.size(); ++w) {
    for (std::uint64_t bits = words_[w]; bits != 0; bits &= bits - 1) {
      out->push_back(w * 64 + static_cast<std::uint64_t>(__builtin_ctzll(bits)));
    }
    words_[w] = 0;
  }
}

}  // namespace pagewire::migration
