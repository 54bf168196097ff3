// libFuzzer target for the handshake: any bytes as a HELLO against several destination
// configurations, as a HELLO_ACK for the source, and as a REFUSE. Invariants: a refusal
// always says something; an accepted HELLO fits the destination (any stream count but 0); the probe ceiling lies in
// the legal MTU range and under the port's; a refusal message is short, printable text;
// and a destination always accepts its own kind of HELLO. With a key: an accepted HELLO
// asked for authentication, and fuzzed proofs never pass (only a key holder makes them).
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "pagewire/transport/handshake.hpp"

using namespace pagewire::transport;

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint8_t bytes[sizeof(RefusePayload)] = {};
  std::memcpy(bytes, data, std::min(size, sizeof bytes));

  HelloPayload hello;
  std::memcpy(&hello, bytes, sizeof hello);
  static const PreSharedKey key = PreSharedKey::generate();
  for (std::uint16_t streams : {1, 4}) {
    for (std::uint32_t page_size : {4096u, 65536u}) {
      for (bool keyed : {false, true}) {
      SessionConfig config;
      config.streams = streams;
      config.page_size = page_size;
      config.region_pages = 1u << 20;
      if (keyed) config.security.key = key;
      const auto refusal = check_hello(hello, config);
      if (refusal) {
        check(!refusal->message.empty());
      } else {
        check(((hello.security.get() & kSecurityAuthenticated) != 0) == keyed);
        check(hello.version.get() == kProtocolVersion);
        // Any stream count but 0: the session runs the smaller of the two offers.
        check(hello.page_size.get() == page_size && hello.streams.get() >= 1);
        check(hello.region_pages.get() <= config.region_pages);
        check(hello.max_record_bytes.get() <= max_record_bytes(config));
      }
      for (std::uint16_t mtu : {kMinPathMtu, std::uint16_t{9000}}) {
        check(!check_hello(make_hello(config, mtu), config));
      }
      }
    }
  }
  HelloAuth auth;
  static_assert(sizeof hello + sizeof auth <= sizeof bytes);
  std::memcpy(&auth, bytes + sizeof hello, sizeof auth);
  check(!source_auth_valid(key, 1, hello, auth));
  check(!destination_auth_valid(key, 1, hello, auth, hello, auth));

  const auto ceiling = path_mtu_ceiling(hello, 9000);
  if (ceiling) check(*ceiling >= kMinPathMtu && *ceiling <= 9000);

  RefusePayload refusal;
  std::memcpy(&refusal, bytes, sizeof refusal);
  const std::string message = refusal_message(refusal);
  check(message.size() < sizeof refusal.message);
  for (char c : message) check(c >= 0x20 && c < 0x7f);
  return 0;
}
