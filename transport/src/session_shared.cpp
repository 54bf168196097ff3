#include "session_shared.hpp"

#include <random>

namespace pagewire::transport {

std::uint32_t new_session_id() {
  std::random_device random;
  std::uint32_t id = 0;
  while (id == 0) id = random();
  return id;
}

Result<std::uint16_t> prepare_port(const SessionConfig& config, const Port& port) {
  if (config.streams == 0) return make_error(ErrorCode::kConfiguration, "streams: at least one is needed");
  if (config.region_pages == 0 || config.region_pages >= kMaxRegionPages) {
    return make_error(ErrorCode::kConfiguration, "region: expected 1 to 2^47 pages, got " + std::to_string(config.region_pages));
  }
  const std::uint16_t offered = std::min(config.streams, port.queues());
  if (!config.stream_lcores.empty() && config.stream_lcores.size() < offered) {
    return make_error(ErrorCode::kConfiguration, "stream lcores: " + std::to_string(config.stream_lcores.size()) + " for " +
                      std::to_string(offered) + " streams; each stream needs an lcore of its own");
  }
  if (Status steered = port.steer_streams(config.path.local, offered); !steered) return steered.error();
  return offered;
}

Status check_memory(const pagecodec::PageMap& memory, const SessionConfig& config) {
  if (memory.pages() != config.region_pages || memory.page_size() != config.page_size) {
    return make_error(ErrorCode::kConfiguration,
                      "guest memory of " + std::to_string(memory.pages()) + " pages of " +
                          std::to_string(memory.page_size()) + " bytes: the session offers " +
                          std::to_string(config.region_pages) + " pages of " + std::to_string(config.page_size));
  }
  return Ok{};
}

Status map_for_dma(const Port& port, const pagecodec::PageMap& memory) {
  const auto blocks = memory.blocks();
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    if (Status mapped = port.map_for_dma(blocks[b].bytes, blocks[b].pages * memory.page_size()); !mapped) {
      for (std::size_t undo = 0; undo < b; ++undo) {
        port.unmap_for_dma(blocks[undo].bytes, blocks[undo].pages * memory.page_size());
      }
      return mapped;
    }
  }
  return Ok{};
}

void unmap_for_dma(const Port& port, const pagecodec::PageMap& memory) {
  for (const pagecodec::MemoryBlock& block : memory.blocks()) port.unmap_for_dma(block.bytes, block.pages * memory.page_size());
}

std::string fewer_streams_note(std::uint16_t asked, std::uint16_t agreed, const Port& port) {
  if (agreed == asked) return "";
  std::string note = std::to_string(agreed) + " of the " + std::to_string(asked) + " streams asked for: ";
  if (port.queues() < asked) {
    note += "port " + port.name() + " has " + std::to_string(port.queues()) + " queue pairs";
    if (agreed < port.queues()) note += ", and the peer takes " + std::to_string(agreed);
  } else {
    note += "the peer takes " + std::to_string(agreed);
  }
  return note;
}

bool crosses_network(const SessionConfig& config, const Port& port) {
  return !port.memory_link() || config.emulated_network;
}

void apply_udp_checksum(const SessionConfig& config, const Port& port, Path* path) {
  const bool network = crosses_network(config, port);
  path->udp_checksum =
      config.udp_checksum == UdpChecksum::kOn || (config.udp_checksum == UdpChecksum::kAuto && network);
  path->tx_checksum_offload = port.tx_checksum_offload();
}

const char* checksum_note(const Path& path) {
  if (!path.udp_checksum) return "off";
  return path.tx_checksum_offload ? "offloaded" : "software";
}

Result<std::unique_ptr<StreamRunner>> launch_runner(const SessionConfig& config) {
  if (config.stream_lcores.empty()) return std::unique_ptr<StreamRunner>{};
  return StreamRunner::launch(std::span(config.stream_lcores).first(config.streams), config.runner);
}

}  // namespace pagewire::transport
