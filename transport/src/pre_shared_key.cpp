#include "pagewire/transport/pre_shared_key.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <iterator>

namespace pagewire::transport {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Hex digits with optional whitespace between them; nullopt-like empty result on anything else.
bool decode_hex(std::string_view text, std::vector<std::uint8_t>* out) {
  int high = -1;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    const int value = hex_value(c);
    if (value < 0) return false;
    if (high < 0) {
      high = value;
    } else {
      out->push_back(static_cast<std::uint8_t>(high << 4 | value));
      high = -1;
    }
  }
  return high < 0 && !out->empty();
}

void wipe(std::string& text) { OPENSSL_cleanse(text.data(), text.size()); }

}  // namespace

PreSharedKey::~PreSharedKey() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

Result<PreSharedKey> PreSharedKey::from_bytes(std::span<const std::uint8_t> bytes, std::string_view origin) {
  if (bytes.size() < kMinBytes) {
    return make_error(std::string(origin) + ": the key holds " + std::to_string(bytes.size()) +
                      " bytes; at least " + std::to_string(kMinBytes) +
                      " are needed (make one with: head -c 32 /dev/urandom > key; chmod 600 key)");
  }
  PreSharedKey key;
  key.bytes_.assign(bytes.begin(), bytes.end());
  return key;
}

Result<PreSharedKey> PreSharedKey::from_hex(std::string_view hex, std::string_view origin) {
  std::vector<std::uint8_t> bytes;
  if (!decode_hex(hex, &bytes)) {
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return make_error(std::string(origin) + ": expected an even number of hex digits");
  }
  auto key = from_bytes(bytes, origin);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

PreSharedKey PreSharedKey::generate() {
  PreSharedKey key;
  key.bytes_.resize(kMinBytes);
  if (RAND_bytes(key.bytes_.data(), static_cast<int>(key.bytes_.size())) != 1) std::abort();  // no entropy: no keys
  return key;
}

Status PreSharedKey::write_file(const std::string& path) const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (std::uint8_t byte : bytes_) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 15];
  }
  hex += '\n';
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const bool written = fd >= 0 && ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size());
  if (fd >= 0) ::close(fd);
  wipe(hex);
  if (!written) return make_error(path + ": cannot create the key file (it must not exist yet)");
  return Ok{};
}

Result<PreSharedKey> PreSharedKey::from_file(const std::string& path) {
  const std::string origin = "--psk-file " + path;
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) return make_error(origin + ": cannot read the file");
  if (!S_ISREG(status.st_mode)) return make_error(origin + ": not a regular file");
  if ((status.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return make_error(origin + ": readable by others than its owner; chmod 600 it");
  }
  std::ifstream in(path, std::ios::binary);
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    wipe(contents);
    return make_error(origin + ": cannot read the file");
  }
  std::vector<std::uint8_t> bytes;
  Result<PreSharedKey> key = decode_hex(contents, &bytes)
                                 ? from_bytes(bytes, origin)
                                 : from_bytes({reinterpret_cast<const std::uint8_t*>(contents.data()), contents.size()},
                                              origin);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  wipe(contents);
  return key;
}

}  // namespace pagewire::transport
