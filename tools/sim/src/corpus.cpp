#include "pagewire/sim/corpus.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

namespace pagewire::sim {

std::string_view to_string(CorpusKind kind) {
  switch (kind) {
    case CorpusKind::kZero: return "zero";
    case CorpusKind::kText: return "text";
    case CorpusKind::kBinary: return "binary";
    case CorpusKind::kRandom: return "random";
    case CorpusKind::kMix: return "mix";
  }
  return "?";
}

namespace {

namespace fs = std::filesystem;

bool wanted(const fs::path& path, CorpusKind kind) {
  const std::string name = path.filename().string();
  if (kind == CorpusKind::kText) return true;
  return name.find(".so") != std::string::npos;  // shared objects
}

// Fills `out` with the bytes of the files under `roots` in sorted path order, repeating
// them when they are fewer than out.size(). Returns false when there are none.
bool fill_from_files(std::span<std::byte> out, const std::vector<fs::path>& roots,
                     CorpusKind kind) {
  std::vector<fs::path> files;
  for (const auto& root : roots) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
         it != end && !ec; it.increment(ec)) {
      if (it->is_regular_file(ec) && !it->is_symlink(ec) && wanted(it->path(), kind)) {
        files.push_back(it->path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  std::size_t filled = 0;
  for (int pass = 0; pass < 64 && filled < out.size(); ++pass) {
    const std::size_t before = filled;
    for (const auto& file : files) {
      if (filled == out.size()) break;
      std::ifstream in(file, std::ios::binary);
      in.read(reinterpret_cast<char*>(out.data() + filled),
              static_cast<std::streamsize>(out.size() - filled));
      filled += static_cast<std::size_t>(in.gcount());
    }
    if (filled == before) return false;
  }
  return filled == out.size();
}

void fill_random(std::span<std::byte> out, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i + 8 <= out.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
}

const std::vector<fs::path> kTextRoots = {"/usr/share/common-licenses", "/usr/include"};
const std::vector<fs::path> kBinaryRoots = {"/usr/lib/x86_64-linux-gnu"};

Status fill(CorpusKind kind, std::span<std::byte> out, std::uint32_t page_size) {
  switch (kind) {
    case CorpusKind::kZero:
      return Ok{};  // fresh anonymous memory is zero
    case CorpusKind::kText:
    case CorpusKind::kBinary:
      if (!fill_from_files(out, kind == CorpusKind::kText ? kTextRoots : kBinaryRoots, kind)) {
        return make_error(std::string("no files for the ") + std::string(to_string(kind)) +
                          " corpus under /usr: is this a Debian system with headers installed?");
      }
      return Ok{};
    case CorpusKind::kRandom:
      fill_random(out, 42);
      return Ok{};
    case CorpusKind::kMix: {
      auto text = make_corpus(CorpusKind::kText, out.size(), page_size);
      if (!text) return text.error();
      auto binary = make_corpus(CorpusKind::kBinary, out.size(), page_size);
      if (!binary) return binary.error();
      std::mt19937_64 rng(7);
      for (std::size_t offset = 0; offset < out.size(); offset += page_size) {
        const auto pick = rng() % 10;
        std::byte* page = out.data() + offset;
        if (pick < 3) continue;  // zero
        if (pick < 6) {
          std::memcpy(page, text->data() + offset, page_size);
        } else if (pick < 9) {
          std::memcpy(page, binary->data() + offset, page_size);
        } else {
          fill_random({page, page_size}, rng());
        }
      }
      return Ok{};
    }
  }
  return Ok{};
}

}  // namespace

Result<MappedMemory> make_corpus(CorpusKind kind, std::size_t bytes, std::uint32_t page_size) {
  auto memory = MappedMemory::allocate(bytes);
  if (!memory) return memory.error();
  if (auto status = fill(kind, memory->bytes(), page_size); !status) return status.error();
  return memory;
}

}  // namespace pagewire::sim
