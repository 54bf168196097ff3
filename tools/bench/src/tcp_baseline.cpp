#include "pagewire/bench/tcp_baseline.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "pagewire/pagecodec/decoder.hpp"
#include "pagewire/pagecodec/encoder.hpp"
#include "pagewire/transport/session.hpp"

namespace pagewire::bench {

namespace {

using Clock = std::chrono::steady_clock;

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool write_all(int fd, const std::byte* bytes, std::size_t length) {
  while (length > 0) {
    const ssize_t n = write(fd, bytes, length);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes += n;
    length -= static_cast<std::size_t>(n);
  }
  return true;
}

// Connected pairs over the loopback: [s] = {sender end, receiver end}.
Result<std::vector<std::pair<Socket, Socket>>> connect_pairs(std::uint16_t count) {
  Socket listener(socket(AF_INET, SOCK_STREAM, 0));
  if (listener.fd() < 0) return make_error(errno_text("tcp baseline: socket"));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(listener.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener.fd(), count) != 0 ||
      getsockname(listener.fd(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return make_error(errno_text("tcp baseline: listen on 127.0.0.1"));
  }
  std::vector<std::pair<Socket, Socket>> pairs;
  for (std::uint16_t s = 0; s < count; ++s) {
    Socket sender(socket(AF_INET, SOCK_STREAM, 0));
    if (sender.fd() < 0 || connect(sender.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      return make_error(errno_text("tcp baseline: connect"));
    }
    Socket receiver(accept(listener.fd(), nullptr, nullptr));
    if (receiver.fd() < 0) return make_error(errno_text("tcp baseline: accept"));
    pairs.emplace_back(std::move(sender), std::move(receiver));
  }
  return pairs;
}

struct StreamJob {
  std::uint64_t first_page = 0, pages = 0;
  std::string error;
};

void send_stream(int fd, const pagecodec::PageMap& memory, const TcpBaselineOptions& options, StreamJob& job) {
  const std::uint64_t region_pages = memory.pages();
  auto encoder = pagecodec::Encoder::create(
      {.page_size = options.page_size, .region_pages = region_pages, .delta_cache_bytes = 0, .policy = options.policy});
  if (!encoder) {
    job.error = encoder.error().message;
    return;
  }
  std::vector<std::uint64_t> pages(job.pages);
  std::iota(pages.begin(), pages.end(), job.first_page);
  std::vector<std::byte> out(std::max<std::size_t>(256 << 10, encoder->max_record_bytes()));
  std::span<const std::uint64_t> left(pages);
  while (!left.empty()) {
    const auto progress = encoder->encode(memory, left, 1, out);
    if (progress.stop == pagecodec::EncodeStop::kPageOutOfRange) {
      job.error = "page out of range";
      return;
    }
    if (!write_all(fd, out.data(), progress.bytes_written)) {
      job.error = errno_text("tcp baseline: write");
      return;
    }
    left = left.subspan(progress.pages_consumed);
  }
  shutdown(fd, SHUT_WR);
}

void receive_stream(int fd, const pagecodec::PageMap& memory, StreamJob& job) {
  auto decoder = pagecodec::Decoder::create(memory.page_size(), memory.pages());
  if (!decoder) {
    job.error = decoder.error().message;
    return;
  }
  std::vector<std::byte> buffer(4 << 20);
  std::size_t begin = 0, end = 0;
  for (;;) {
    // Apply every whole record in the buffer; keep a partial one for the next read.
    while (end - begin >= sizeof(pagecodec::RecordHeader)) {
      pagecodec::RecordHeader header;
      std::memcpy(&header, buffer.data() + begin, sizeof header);
      const std::size_t record = sizeof header + header.payload_bytes.get();
      if (record > buffer.size()) {
        job.error = "a record of " + std::to_string(record) + " bytes";
        return;
      }
      if (end - begin < record) break;
      const auto parsed = decoder->parse({buffer.data() + begin, record});
      if (parsed.error != pagecodec::DecodeError::kNone || decoder->apply(parsed.view, memory) != pagecodec::DecodeError::kNone) {
        job.error = "tcp baseline: a record was refused";
        return;
      }
      begin += record;
    }
    if (begin > 0) {
      std::memmove(buffer.data(), buffer.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    const ssize_t n = read(fd, buffer.data() + end, buffer.size() - end);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      job.error = errno_text("tcp baseline: read");
      return;
    }
    if (n == 0) {
      if (end != 0) job.error = "tcp baseline: the stream ended inside a record";
      return;
    }
    end += static_cast<std::size_t>(n);
  }
}

}  // namespace

Result<double> tcp_round(std::span<const std::byte> source, std::span<std::byte> destination,
                         const TcpBaselineOptions& options) {
  if (source.size() != destination.size() || source.size() % options.page_size != 0 || options.streams == 0) {
    return make_error("tcp baseline: source and destination must be the same whole number of pages");
  }
  const std::uint64_t region_pages = source.size() / options.page_size;
  // The encoder only reads the source; a PageMap names memory either end may use.
  const auto source_pages =
      pagecodec::PageMap::contiguous(const_cast<std::byte*>(source.data()), region_pages, options.page_size);
  const auto destination_pages = pagecodec::PageMap::contiguous(destination.data(), region_pages, options.page_size);
  auto pairs = connect_pairs(options.streams);
  if (!pairs) return pairs.error();
  std::vector<StreamJob> sending(options.streams), receiving(options.streams);
  for (std::uint16_t s = 0; s < options.streams; ++s) {
    const std::uint64_t first = transport::first_page_of_stream(s, region_pages, options.streams);
    const std::uint64_t end =
        transport::first_page_of_stream(static_cast<std::uint16_t>(s + 1), region_pages, options.streams);
    sending[s] = receiving[s] = {.first_page = first, .pages = end - first, .error = {}};
  }
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (std::uint16_t s = 0; s < options.streams; ++s) {
    threads.emplace_back([&, s] {
      pin(options.receiver_cpu);
      receive_stream((*pairs)[s].second.fd(), destination_pages, receiving[s]);
    });
    threads.emplace_back([&, s] {
      pin(options.sender_cpu);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      send_stream((*pairs)[s].first.fd(), source_pages, options, sending[s]);
    });
  }
  const auto start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& thread : threads) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto* jobs : {&sending, &receiving}) {
    for (const auto& job : *jobs) {
      if (!job.error.empty()) return make_error(job.error);
    }
  }
  return seconds;
}

}  // namespace pagewire::bench
