// The QMP client against a scripted server on a unix socket: the greeting and capability
// negotiation, events skipped while waiting for an answer, QEMU's refusals passed on with
// its own words, a server that hangs up.
#include "pagewire/bench/qmp_client.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace pagewire::bench {
namespace {

// Listens on a fresh socket path; serve() answers each line it reads with the next reply
// (replies may hold several lines), then hangs up.
class ScriptedQmpServer {
 public:
  ScriptedQmpServer() {
    path_ = "/tmp/pagewire-qmp-test-" + std::to_string(getpid()) + "-" + std::to_string(next_id_++) + ".sock";
    unlink(path_.c_str());
    listener_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path_.c_str());
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(listener_, 1), 0);
  }
  ~ScriptedQmpServer() {
    join();
    close(listener_);
    unlink(path_.c_str());
  }
  void serve(std::vector<std::string> replies) {
    thread_ = std::thread([this, replies = std::move(replies)] {
      const int client = accept(listener_, nullptr, nullptr);
      const std::string greeting = R"({"QMP": {"version": {}, "capabilities": []}})" "\r\n";
      (void)!write(client, greeting.data(), greeting.size());
      std::string pending;
      for (const auto& reply : replies) {
        char byte;
        while (read(client, &byte, 1) == 1 && byte != '\n') pending += byte;
        received_.push_back(pending);
        pending.clear();
        (void)!write(client, reply.data(), reply.size());
      }
      close(client);
    });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& path() const { return path_; }
  const std::vector<std::string>& received() const { return received_; }  // after join()

 private:
  static inline int next_id_ = 0;
  std::string path_;
  int listener_ = -1;
  std::thread thread_;
  std::vector<std::string> received_;
};

TEST(QmpClient, NegotiatesThenSkipsEventsToTheAnswer) {
  ScriptedQmpServer server;
  server.serve({R"({"return": {}})" "\r\n",
                R"({"event": "MIGRATION", "data": {"status": "setup"}})" "\r\n"
                R"({"return": {"status": "completed", "total-time": 812}})" "\r\n"});
  {
    auto client = QmpClient::connect(server.path(), 2000);
    ASSERT_TRUE(client.ok()) << client.error().message;
    auto state = client->execute("query-migrate");
    ASSERT_TRUE(state.ok()) << state.error().message;
    EXPECT_EQ(state->value("status", ""), "completed");
    EXPECT_EQ(state->value("total-time", 0), 812);
  }
  server.join();
  const std::vector<std::string> expected{R"({"execute":"qmp_capabilities"})", R"({"execute":"query-migrate"})"};
  EXPECT_EQ(server.received(), expected);
}

TEST(QmpClient, SendsArgumentsAndPassesOnQemusRefusal) {
  ScriptedQmpServer server;
  server.serve({R"({"return": {}})" "\r\n",
                R"({"error": {"class": "GenericError", "desc": "Parameter 'multifd-channels' expects uint8"}})" "\r\n"});
  auto client = QmpClient::connect(server.path(), 2000);
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto refused = client->execute("migrate-set-parameters", {{"multifd-channels", 300}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("migrate-set-parameters refused: Parameter 'multifd-channels' expects uint8"),
            std::string::npos)
      << refused.error().message;
}

TEST(QmpClient, AServerThatHangsUpIsAnError) {
  ScriptedQmpServer server;
  server.serve({R"({"return": {}})" "\r\n"});  // answers the capabilities, then closes
  auto client = QmpClient::connect(server.path(), 2000);
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto lost = client->execute("query-migrate");
  ASSERT_FALSE(lost.ok());
  // Gone before the request (the send fails) or after it (nothing comes back): either way
  // the error names the command and what happened.
  const std::string& why = lost.error().message;
  EXPECT_EQ(why.rfind("QMP query-migrate: ", 0), 0u) << why;
  EXPECT_TRUE(why.find("closed the connection") != std::string::npos || why.find("Broken pipe") != std::string::npos)
      << why;
}

TEST(QmpClient, NoServerIsAnErrorAfterTheTimeout) {
  auto client = QmpClient::connect("/tmp/pagewire-qmp-test-nobody-listens.sock", 100);
  ASSERT_FALSE(client.ok());
  EXPECT_NE(client.error().message.find("cannot connect within 100 ms"), std::string::npos) << client.error().message;
}

}  // namespace
}  // namespace pagewire::bench
