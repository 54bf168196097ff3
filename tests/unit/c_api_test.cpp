// pagewire.h at its edges, without a port: defaults, and bad calls answered with the code
// and a message that names what was wrong, never a crash.
#include "pagewire.h"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(CApi, ReportsItsApiVersionAndDefaults) {
  EXPECT_EQ(pagewire_api_version(), PAGEWIRE_API_VERSION);
  pagewire_link_config config;
  pagewire_link_config_init(&config);
  EXPECT_EQ(config.port_id, -1);
  EXPECT_EQ(config.streams, 1);
  EXPECT_EQ(config.mtu, 9000);
  pagewire_source_options options;
  pagewire_source_options_init(&options);
  EXPECT_EQ(options.downtime_limit_ms, 300u);
  EXPECT_STREQ(options.policy, "adaptive");
  EXPECT_STREQ(options.postcopy, "off");
  EXPECT_EQ(options.postcopy_after_rounds, 1u);
  EXPECT_EQ(pagewire_state_pages(4096 - 8, 4096), 1u);
  EXPECT_EQ(pagewire_state_pages(4096, 4096), 2u) << "the length comes first";
}

TEST(CApi, ALinkWithoutAPortIsAConfigurationError) {
  pagewire_link_config config;
  pagewire_link_config_init(&config);
  config.local_ip = "10.0.0.1";
  config.peer_ip = "10.0.0.2";
  pagewire_link* link = nullptr;
  pagewire_error error;
  EXPECT_EQ(pagewire_link_open(&config, &link, &error), PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_EQ(error.code, PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_NE(std::string(error.message).find("exactly one of vdev, pci and port_id"), std::string::npos)
      << error.message;
  EXPECT_EQ(link, nullptr);
}

TEST(CApi, ABadAddressNamesTheField) {
  pagewire_link_config config;
  pagewire_link_config_init(&config);
  config.vdev = "net_null0";
  config.local_ip = "10.0.0.300";
  pagewire_link* link = nullptr;
  pagewire_error error;
  EXPECT_EQ(pagewire_link_open(&config, &link, &error), PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_NE(std::string(error.message).find("local_ip 10.0.0.300"), std::string::npos) << error.message;
  EXPECT_EQ(pagewire_link_open(nullptr, &link, nullptr), PAGEWIRE_ERR_CONFIGURATION) << "no error record: still a code";
}

TEST(CApi, MissingHandlesAndHooksAreRefused) {
  pagewire_error error;
  pagewire_source* source = nullptr;
  char memory[64];
  EXPECT_EQ(pagewire_source_connect(nullptr, memory, sizeof memory, 1, 4096, nullptr, &source, &error),
            PAGEWIRE_ERR_CONFIGURATION);
  pagewire_source_hooks hooks{};
  EXPECT_EQ(pagewire_source_run(nullptr, &hooks, nullptr, 0, nullptr, &error), PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_NE(std::string(error.message).find("pause and resume hooks"), std::string::npos) << error.message;
  EXPECT_EQ(pagewire_destination_run(nullptr, nullptr, nullptr, 0, nullptr, &error), PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_EQ(pagewire_destination_run_postcopy(nullptr, nullptr, nullptr, nullptr, 0, nullptr, &error),
            PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_EQ(PAGEWIRE_ERR_GUEST_LOST, 15) << "pagewire::ErrorCode::kGuestLost";
  pagewire_commit_outcome outcome = PAGEWIRE_OUTCOME_PENDING;
  EXPECT_EQ(pagewire_query_outcome(nullptr, 7, 100, &outcome, &error), PAGEWIRE_ERR_CONFIGURATION);
  EXPECT_NE(std::string(error.message).find("link and outcome are required"), std::string::npos) << error.message;
  EXPECT_EQ(outcome, PAGEWIRE_OUTCOME_PENDING) << "untouched on an error";
}

}  // namespace
