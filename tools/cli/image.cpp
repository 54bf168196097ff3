// pagewire image create | stats | digest: reference memory images as files.
#include <boost/program_options.hpp>
#include <sys/stat.h>

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "pagewire/migration/digest.hpp"
#include "pagewire/sim/image.hpp"
#include "pagewire/sim/mapped_memory.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

int image(const std::vector<std::string>& args) {
  std::string action, path, profile_name = "idle-vm";
  std::uint64_t size_mib = 1024, seed = 1;
  std::uint32_t page_size = 4096;
  bool json = false, force = false;
  po::options_description d("image options");
  d.add_options()
      ("help,h", "show this help")
      ("action", po::value(&action), "create, stats or digest")
      ("file", po::value(&path), "the image file")
      ("profile", po::value(&profile_name)->default_value(profile_name), "create: idle-vm, database or random")
      ("size-mib", po::value(&size_mib)->default_value(size_mib), "create: size in MiB")
      ("seed", po::value(&seed)->default_value(seed), "create: content seed")
      ("page-size", po::value(&page_size)->default_value(page_size), "guest page size")
      ("force", po::bool_switch(&force), "create: replace an existing file")
      ("json", po::bool_switch(&json), "stats and digest as JSON");
  po::positional_options_description positional;
  positional.add("action", 1).add("file", 1);
  const std::string usage =
      "pagewire image create|stats|digest FILE [options]\n"
      "Any raw file is an image: a QEMU pmemsave / dump-guest-memory dump, a core file's memory.";
  if (auto done = parse_options(args, d, usage, &positional)) return *done;
  if (action.empty() || path.empty()) {
    std::cerr << "usage: " << usage << "\n";
    return 2;
  }
  if (action == "create") {
    auto profile = sim::parse_profile(profile_name);
    if (!profile) {
      std::cerr << "pagewire: " << profile.error().message << "\n";
      return 2;
    }
    if (struct stat existing {}; !force && ::stat(path.c_str(), &existing) == 0) {
      std::cerr << "pagewire image create: " << path << " exists; --force replaces it\n";
      return 1;
    }
    if (size_mib == 0 || size_mib > (1u << 30)) {
      std::cerr << "pagewire image create: --size-mib " << size_mib << ": expected 1 to 1073741824 (1 PiB)\n";
      return 2;
    }
    if (auto status = sim::create_image_file(path, size_mib << 20, page_size, *profile, seed); !status) {
      std::cerr << "pagewire: " << status.error().message << "\n";
      return 1;
    }
    std::cout << "image " << path << ": " << size_mib << " MiB " << profile_name << ", seed " << seed << "\n";
    return 0;
  }
  if (action != "stats" && action != "digest") {
    std::cerr << "pagewire image: '" << action << "': expected create, stats or digest\n";
    return 2;
  }
  auto memory = sim::MappedMemory::map_file_private(path, 0);
  if (!memory) {
    std::cerr << "pagewire: " << memory.error().message << "\n";
    return 1;
  }
  if (action == "digest") {
    const std::string digest = migration::to_hex(migration::digest_of(memory->bytes()));
    if (json) {
      std::cout << nlohmann::json{{"file", path}, {"bytes", memory->size()}, {"digest", digest}}.dump() << "\n";
    } else {
      std::cout << digest << "  " << path << "\n";
    }
    return 0;
  }
  if (memory->size() % page_size != 0) {
    std::cerr << "pagewire image stats: " << path << " is not a whole number of " << page_size << "-byte pages\n";
    return 1;
  }
  const sim::ImageStats s = sim::image_stats(memory->bytes(), page_size);
  const std::uint64_t unique = s.pages - s.zero_pages - s.duplicate_pages;
  const double ratio = s.deflate_bytes == 0 ? 0 : static_cast<double>(unique) * page_size / s.deflate_bytes;
  if (json) {
    std::cout << nlohmann::json{{"file", path}, {"pages", s.pages}, {"zero_pages", s.zero_pages},
                                {"duplicate_pages", s.duplicate_pages}, {"unique_pages", unique},
                                {"unique_deflate_ratio", ratio}, {"deflate_bytes", s.deflate_bytes}}
                     .dump()
              << "\n";
    return 0;
  }
  auto percent = [&](std::uint64_t n) { return 100.0 * static_cast<double>(n) / static_cast<double>(s.pages); };
  std::cout << std::fixed << std::setprecision(1) << path << ": " << s.pages << " pages of " << page_size << " bytes\n"
            << "  zero       " << percent(s.zero_pages) << "%  (ZERO records: header only)\n"
            << "  duplicate  " << percent(s.duplicate_pages) << "%  (same content as an earlier page)\n"
            << "  unique     " << percent(unique) << "%, deflating " << std::setprecision(2) << ratio
            << "x page by page (ISA-L level 1)\n";
  return 0;
}

}  // namespace pagewire::cli
