#include "pagewire/sim/image.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <unordered_set>

#include "pagewire/pagecodec/deflate.hpp"
#include "pagewire/sim/mapped_memory.hpp"

#include "pagewire/sim/corpus.hpp"

namespace pagewire::sim {

Result<ImageProfile> parse_profile(std::string_view name) {
  if (name == "idle-vm") return ImageProfile::kIdleVm;
  if (name == "database") return ImageProfile::kDatabase;
  if (name == "random") return ImageProfile::kRandom;
  return make_error("--profile " + std::string(name) + ": expected idle-vm, database or random");
}

std::string_view to_string(ImageProfile profile) {
  switch (profile) {
    case ImageProfile::kIdleVm: return "idle-vm";
    case ImageProfile::kDatabase: return "database";
    case ImageProfile::kRandom: return "random";
  }
  return "?";
}

namespace {

void fill_random(std::byte* page, std::size_t bytes, std::mt19937_64& rng) {
  for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(page + i, &v, 8);
  }
}

// Rows of a table: id, two small integers, a timestamp, a 24-byte name, padding.
void fill_rows(std::byte* page, std::size_t bytes, std::uint64_t first_row, std::mt19937_64& rng) {
  static constexpr const char* kNames[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};
  struct Row {
    std::uint64_t id;
    std::uint32_t quantity;
    std::uint32_t status;
    std::uint64_t timestamp;
    char name[24];
    std::uint64_t reserved;
  };
  static_assert(sizeof(Row) == 56);
  for (std::size_t offset = 0; offset + sizeof(Row) <= bytes; offset += sizeof(Row)) {
    Row row{};
    row.id = first_row++;
    row.quantity = static_cast<std::uint32_t>(rng() % 1000);
    row.status = static_cast<std::uint32_t>(rng() % 4);
    row.timestamp = 1700000000000ull + row.id * 17;
    std::snprintf(row.name, sizeof row.name, "%s-%u", kNames[rng() % 8], static_cast<unsigned>(rng() % 100));
    std::memcpy(page + offset, &row, sizeof row);
  }
}

}  // namespace

Status fill_image(std::span<std::byte> memory, std::uint32_t page_size, ImageProfile profile, std::uint64_t seed) {
  if (page_size == 0 || memory.size() % page_size != 0) {
    return make_error("image size " + std::to_string(memory.size()) + ": expected a whole number of pages");
  }
  const std::size_t pages = memory.size() / page_size;
  std::mt19937_64 rng(seed);
  if (profile == ImageProfile::kRandom) {
    fill_random(memory.data(), memory.size(), rng);
    return Ok{};
  }
  // Unique content comes from files on the machine, as the codec benchmark's corpora do.
  const std::size_t source_bytes = std::min<std::size_t>(memory.size(), 64u << 20);
  auto text = make_corpus(CorpusKind::kText, source_bytes, page_size);
  if (!text) return text.error();
  auto binary = make_corpus(CorpusKind::kBinary, source_bytes, page_size);
  if (!binary) return binary.error();
  const std::size_t source_pages = source_bytes / page_size;
  std::size_t last_unique = SIZE_MAX;
  for (std::size_t p = 0; p < pages; ++p) {
    std::byte* page = memory.data() + p * page_size;
    const auto pick = rng() % 100;
    const std::byte* from = nullptr;
    if (profile == ImageProfile::kIdleVm) {
      if (pick < 30) {
        std::memset(page, 0, page_size);
        continue;
      }
      if (pick < 41 && last_unique != SIZE_MAX) {
        std::memcpy(page, memory.data() + last_unique * page_size, page_size);  // a duplicate page
        continue;
      }
      from = (pick < 75 ? binary : text)->data() + (rng() % source_pages) * page_size;
    } else {  // database
      if (pick < 20) {
        std::memset(page, 0, page_size);
        continue;
      }
      if (pick < 30) {
        from = text->data() + (rng() % source_pages) * page_size;
      } else {
        fill_rows(page, page_size, p * 73, rng);
        last_unique = p;
        continue;
      }
    }
    std::memcpy(page, from, page_size);
    last_unique = p;
  }
  return Ok{};
}

Status create_image_file(const std::string& path, std::uint64_t bytes, std::uint32_t page_size, ImageProfile profile,
                         std::uint64_t seed) {
  auto memory = MappedMemory::allocate(bytes);
  if (!memory) return memory.error();
  if (auto status = fill_image(memory->bytes(), page_size, profile, seed); !status) return status;
  return write_image_file(path, memory->bytes(), page_size);
}

Status write_image_file(const std::string& path, std::span<const std::byte> memory, std::uint32_t page_size) {
  // Written beside its final name and renamed once on disk: a reader, or a crash, sees the
  // old file or the whole new one, never half of it.
  const std::string partial = path + ".partial";
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(ErrorCode::kSystem, "image " + path + ": cannot create " + partial + ": " + std::strerror(errno));
  bool ok = ::ftruncate(fd, static_cast<off_t>(memory.size())) == 0;  // holes where nothing is written
  static const std::vector<std::byte> zero_page(65536);
  const std::size_t step = std::min<std::size_t>(page_size, zero_page.size());
  for (std::uint64_t offset = 0; ok && offset < memory.size(); offset += step) {
    const std::size_t length = std::min<std::size_t>(step, memory.size() - offset);
    const std::byte* page = memory.data() + offset;
    if (std::memcmp(page, zero_page.data(), length) == 0) continue;
    ok = ::pwrite(fd, page, length, static_cast<off_t>(offset)) == static_cast<ssize_t>(length);
  }
  ok = ok && ::fsync(fd) == 0;
  const std::string reason = std::strerror(errno);
  ok = (::close(fd) == 0) && ok;
  if (ok && ::rename(partial.c_str(), path.c_str()) != 0) {
    ::unlink(partial.c_str());
    return make_error(ErrorCode::kSystem, "image " + path + ": renaming " + partial + " failed: " + std::strerror(errno));
  }
  if (!ok) {
    ::unlink(partial.c_str());
    return make_error(ErrorCode::kSystem, "image " + path + ": writing failed: " + reason);
  }
  return Ok{};
}

ImageStats image_stats(std::span<const std::byte> memory, std::uint32_t page_size) {
  ImageStats stats;
  stats.pages = memory.size() / page_size;
  auto deflater = pagecodec::DeflateCompressor::create(1);
  std::vector<std::byte> out(page_size);
  std::unordered_set<std::uint64_t> seen;  // 64-bit page hashes: a collision only skews the estimate
  for (std::uint64_t p = 0; p < stats.pages; ++p) {
    const std::byte* page = memory.data() + p * page_size;
    bool zero = true;
    for (std::uint32_t i = 0; i < page_size && zero; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, page + i, 8);
      zero = word == 0;
    }
    if (zero) {
      ++stats.zero_pages;
      continue;
    }
    if (!seen.insert(XXH3_64bits(page, page_size)).second) {
      ++stats.duplicate_pages;
      continue;
    }
    const std::size_t compressed = deflater->compress({page, page_size}, out);
    stats.deflate_bytes += compressed == 0 ? page_size : compressed;
    stats.deflate_pages += compressed != 0;
  }
  return stats;
}

}  // namespace pagewire::sim
