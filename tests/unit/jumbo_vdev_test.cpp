// sized_for_jumbo_frames: a vdev string gets the buffer sizes its driver needs for jumbo
// frames, and only where it did not size them itself.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "pagewire/transport/port.hpp"

namespace pagewire::transport {
namespace {

std::uint32_t devarg_number(const std::string& vdev, const std::string& key) {
  const std::size_t at = vdev.find("," + key + "=");
  return at == std::string::npos ? 0 : static_cast<std::uint32_t>(std::stoul(vdev.substr(at + key.size() + 2)));
}

TEST(JumboVdev, MemifGetsBuffersThatHoldANineThousandByteFrame) {
  EXPECT_EQ(sized_for_jumbo_frames("net_memif0,role=server,socket=/tmp/a.sock"),
            "net_memif0,role=server,socket=/tmp/a.sock,bsize=9216");
  EXPECT_EQ(sized_for_jumbo_frames("net_memif0"), "net_memif0,bsize=9216");
}

TEST(JumboVdev, WhatTheUserSizedOrAnotherDriverIsLeftAlone) {
  EXPECT_EQ(sized_for_jumbo_frames("net_memif0,bsize=2048,role=client"), "net_memif0,bsize=2048,role=client");
  EXPECT_EQ(sized_for_jumbo_frames("net_af_packet0,iface=lo,framesz=2048"), "net_af_packet0,iface=lo,framesz=2048");
  EXPECT_EQ(sized_for_jumbo_frames("net_ring0"), "net_ring0");
  EXPECT_EQ(sized_for_jumbo_frames("net_tap0,iface=x"), "net_tap0,iface=x");
  EXPECT_EQ(sized_for_jumbo_frames("net_af_packet0,iface=no-such-interface"), "net_af_packet0,iface=no-such-interface");
}

TEST(JumboVdev, AfPacketRingFramesHoldAFrameOfTheInterfacesMtuInBlocksOfWholeFrames) {
  std::ifstream mtu_file("/sys/class/net/lo/mtu");
  std::uint32_t mtu = 0;
  ASSERT_TRUE(mtu_file >> mtu) << "no loopback interface to size for";
  const std::string sized = sized_for_jumbo_frames("net_af_packet0,iface=lo,framecnt=512");
  if (mtu + 14 + 4 + 32 <= 2048) {
    EXPECT_EQ(sized, "net_af_packet0,iface=lo,framecnt=512") << "the default frame already holds it";
    return;
  }
  const std::uint32_t frame = devarg_number(sized, "framesz");
  const std::uint32_t block = devarg_number(sized, "blocksz");
  EXPECT_GE(frame, mtu + 14 + 4 + 32) << sized;  // Ethernet, a VLAN tag, the tpacket header
  EXPECT_EQ(frame % 1024, 0u) << sized;
  EXPECT_EQ(block % frame, 0u) << "DPDK finds frame i at i * framesz: " << sized;
  EXPECT_EQ(block % static_cast<std::uint32_t>(sysconf(_SC_PAGESIZE)), 0u) << sized;
  EXPECT_EQ(512 % (block / frame), 0u) << "whole blocks of frames: " << sized;
}

}  // namespace
}  // namespace pagewire::transport
