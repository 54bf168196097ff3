// Policy validation and the adaptive DEFLATE decision, fed with fixed costs so the outcome
// does not depend on this machine's speed.
#include "pagewire/pagecodec/policy.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace pagewire::pagecodec {
namespace {

TEST(Policy, DefaultsAreValid) { EXPECT_TRUE(Policy{}.validate().ok()); }

TEST(Policy, ErrorsSayWhatWasExpected) {
  Policy p;
  p.deflate_batch_pages = 0;
  ASSERT_FALSE(p.validate().ok());
  EXPECT_NE(p.validate().error().message.find("expected 1..256"), std::string::npos);
  p = Policy{};
  p.adaptive.enabled = true;
  EXPECT_TRUE(p.validate().ok()) << "no link rate: it is measured";
  p.adaptive.link_bytes_per_second = -1;
  ASSERT_FALSE(p.validate().ok());
  EXPECT_NE(p.validate().error().message.find("link rate"), std::string::npos);
  p.adaptive.link_bytes_per_second = 1e9;
  p.adaptive.cpu_budget = 1.5;
  EXPECT_FALSE(p.validate().ok());
}

constexpr std::uint64_t kBatch = 65536;

// Deflate at 0.5 GB/s shrinking 4x; raw copy at 16 GB/s.
void teach(DeflateAdvisor* advisor) {
  advisor->record_deflate(kBatch, kBatch / 4, kBatch * 2);  // 2 ns per byte
  advisor->record_raw(kBatch, kBatch / 16);
}

TEST(DeflateAdvisor, SlowLinkDeflates) {
  DeflateAdvisor advisor({.enabled = true, .link_bytes_per_second = 0.1e9, .cpu_budget = 1});
  teach(&advisor);
  // Raw sustains the link's 0.1 GB/s; deflate sustains min(0.5, 0.4) GB/s of input.
  EXPECT_NEAR(advisor.raw_rate(), 0.1e9, 1e6);
  EXPECT_NEAR(advisor.deflate_rate(), 0.4e9, 1e6);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(advisor.should_deflate());
}

TEST(DeflateAdvisor, FastLinkSendsRawButStillProbes) {
  DeflateAdvisor advisor({.enabled = true, .link_bytes_per_second = 3e9, .cpu_budget = 1});
  teach(&advisor);
  // A probe every 64 batches until 8 deflated batches have taught the advisor, then after
  // 128, 256, 512, 1024, 1024, ... more: fresh estimates, at a cost that shrinks while raw
  // keeps winning. Each probe is deflated and recorded, as the encoder does.
  std::vector<std::uint32_t> probes_at;
  for (std::uint32_t i = 1; i <= 3456; ++i) {
    if (!advisor.should_deflate()) continue;
    probes_at.push_back(i);
    advisor.record_deflate(kBatch, kBatch / 4, kBatch * 2);
  }
  EXPECT_EQ(probes_at, (std::vector<std::uint32_t>{64, 128, 192, 256, 320, 384, 448, 512, 640, 896, 1408, 2432, 3456}));
}

TEST(DeflateAdvisor, LessCpuBudgetMeansLessDeflate) {
  // 0.4 GB/s link: with a whole core deflate delivers 0.5 GB/s > 0.4; with a fifth of it,
  // 0.1 GB/s < 0.4.
  DeflateAdvisor whole({.enabled = true, .link_bytes_per_second = 0.4e9, .cpu_budget = 1});
  DeflateAdvisor fifth({.enabled = true, .link_bytes_per_second = 0.4e9, .cpu_budget = 0.2});
  teach(&whole);
  teach(&fifth);
  EXPECT_GT(whole.deflate_rate(), whole.raw_rate());
  EXPECT_LT(fifth.deflate_rate(), fifth.raw_rate());
}

// The sender's own cap bounds the link: unmeasured (0) it is the link; measured faster, the
// cap still wins; measured slower, the measurement does.
TEST(DeflateAdvisor, TheSendersOwnCapBoundsTheLink) {
  DeflateAdvisor capped({.enabled = true, .link_bytes_per_second = 0, .cpu_budget = 1});
  teach(&capped);
  EXPECT_GT(capped.raw_rate(), 1e9) << "nothing known of the link: raw goes at the core's speed";
  capped.set_send_cap(0.125e9);  // 1 Gbit/s
  EXPECT_NEAR(capped.raw_rate(), 0.125e9, 1e6);
  EXPECT_GT(capped.deflate_rate(), capped.raw_rate());
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(capped.should_deflate());
  capped.set_measured_link(3e9);
  EXPECT_NEAR(capped.raw_rate(), 0.125e9, 1e6) << "a faster path does not lift our own cap";
  capped.set_measured_link(0.05e9);
  EXPECT_NEAR(capped.raw_rate(), 0.05e9, 1e6) << "a slower path is the bound";
}

TEST(DeflateAdvisor, IncompressibleDataStopsDeflating) {
  DeflateAdvisor advisor({.enabled = true, .link_bytes_per_second = 0.1e9, .cpu_budget = 1});
  for (int i = 0; i < 50; ++i) {
    advisor.record_deflate(kBatch, kBatch, kBatch * 2);  // no gain, 0.5 GB/s
    advisor.record_raw(kBatch, kBatch / 16);
  }
  EXPECT_LT(advisor.deflate_rate(), advisor.raw_rate() * 1.0001);
  EXPECT_FALSE(advisor.should_deflate());
}

TEST(DeflateAdvisor, AnUnmeasuredLinkIsUnboundedAndSendsRaw) {
  DeflateAdvisor advisor({.enabled = true, .link_bytes_per_second = 0, .cpu_budget = 1});
  teach(&advisor);
  EXPECT_NEAR(advisor.raw_rate(), 16e9, 1e8) << "only the copy limits raw";
  int deflated = 0;
  for (std::uint32_t i = 0; i < 10 * DeflateAdvisor::kProbeInterval; ++i) deflated += advisor.should_deflate() ? 1 : 0;
  EXPECT_EQ(deflated, 10) << "raw, with a probe every 64 batches while the estimates settle";
}

TEST(DeflateAdvisor, AMeasuredSlowLinkDeflatesAndAFastOneDoesNot) {
  DeflateAdvisor advisor({.enabled = true, .link_bytes_per_second = 0, .cpu_budget = 1});
  teach(&advisor);
  advisor.set_measured_link(0.125e9);  // 1 Gbit/s: raw 0.125 GB/s, deflate min(0.5, 0.5) GB/s
  EXPECT_NEAR(advisor.raw_rate(), 0.125e9, 1e6);
  EXPECT_GT(advisor.deflate_rate(), advisor.raw_rate());
  EXPECT_TRUE(advisor.should_deflate());
  advisor.set_measured_link(3e9);  // faster than deflate can feed it
  EXPECT_LT(advisor.deflate_rate(), advisor.raw_rate());
  advisor.should_deflate();  // may be the probe
  int deflated = 0;
  for (std::uint32_t i = 0; i < DeflateAdvisor::kProbeInterval - 1; ++i) deflated += advisor.should_deflate() ? 1 : 0;
  EXPECT_LE(deflated, 1);
}

TEST(DeflateAdvisor, DisabledAlwaysDeflates) {
  DeflateAdvisor advisor(AdaptivePolicy{});
  EXPECT_TRUE(advisor.should_deflate());
}

}  // namespace
}  // namespace pagewire::pagecodec
