// Delta decoding. The payload is hostile: it is validated completely before the first byte
// of the page is touched, so a malformed record can never leave a half-applied page.
#include <cstring>

#include "pagewire/pagecodec/xbzrle.hpp"
#include "uleb128.hpp"

namespace pagewire::pagecodec::xbzrle {

bool validate(std::span<const std::byte> payload, std::size_t page_size) {
  const std::byte* in = payload.data();
  const std::byte* const end = in + payload.size();
  std::size_t page_offset = 0;
  while (in < end) {
    std::uint32_t unchanged = 0;
    std::uint32_t changed = 0;
    std::size_t n = uleb128::get(in, end, kMaxUlebBytes, &unchanged);
    if (n == 0) return false;
    in += n;
    n = uleb128::get(in, end, kMaxUlebBytes, &changed);
    if (n == 0 || changed == 0) return false;
    in += n;
    if (unchanged > page_size - page_offset) return false;
    page_offset += unchanged;
    if (changed > page_size - page_offset) return false;
    if (changed > static_cast<std::size_t>(end - in)) return false;
    page_offset += changed;
    in += changed;
  }
  return true;
}

void apply_validated(std::span<const std::byte> payload, std::byte* page) {
  const std::byte* in = payload.data();
  const std::byte* const end = in + payload.size();
  std::size_t page_offset = 0;
  while (in < end) {
    std::uint32_t unchanged = 0;
    std::uint32_t changed = 0;
    in += uleb128::get(in, end, kMaxUlebBytes, &unchanged);
    in += uleb128::get(in, end, kMaxUlebBytes, &changed);
    page_offset += unchanged;
    std::memcpy(page + page_offset, in, changed);
    page_offset += changed;
    in += changed;
  }
}

}  // namespace pagewire::pagecodec::xbzrle
