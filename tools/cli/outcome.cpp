// pagewire outcome: asks a destination how a session ended, for a source whose COMMIT went
// unanswered (src exited 3, "outcome unknown"), from this process or after a restart. The
// answer decides who owns the guest: committed, the destination (keep the source's copy
// stopped); not committed, the source (resume it); otherwise ask again later.
#include <boost/program_options.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "endpoint.hpp"
#include "json_events.hpp"
#include "pagewire/migration/source.hpp"

namespace po = boost::program_options;

namespace pagewire::cli {

namespace {

// Exit codes as src's: 0 committed (the destination owns the guest); 1 not committed (the
// source does); 3 pending or unknown (ask again; keep the guest paused meanwhile).
int exit_code_of(migration::CommitOutcome outcome) {
  switch (outcome) {
    case migration::CommitOutcome::kCommitted: return 0;
    case migration::CommitOutcome::kNotCommitted: return 1;
    default: return 3;
  }
}

const char* advice_for(migration::CommitOutcome outcome) {
  switch (outcome) {
    case migration::CommitOutcome::kCommitted: return "the destination owns the guest: keep the source's copy stopped";
    case migration::CommitOutcome::kNotCommitted: return "the destination kept nothing: resume the guest on the source";
    case migration::CommitOutcome::kPending: return "the destination still waits for COMMIT: nothing is decided, ask again";
    case migration::CommitOutcome::kUnknown: break;
  }
  return "no answer: the destination is gone or no longer remembers the session; keep the guest paused and ask again";
}

}  // namespace

int outcome(const std::vector<std::string>& args) {
  LinkOptions o;
  std::uint32_t session = 0;
  std::uint32_t wait_s = 10;
  po::options_description d("outcome options");
  add_link_options(d, o, true);
  d.add_options()("session", po::value(&session)->required(), "the session to ask about (src printed it with \"outcome unknown\")")(
      "wait-s", po::value(&wait_s)->default_value(wait_s), "how long to ask before the answer is 'unknown'");
  auto [own, eal_arguments] = split_at_dashes(args);
  o.eal_arguments = std::move(eal_arguments);
  if (auto done = parse_options(own, d, "pagewire outcome --session ID --vdev DEV | --pci ADDR [src's link options] [-- EAL options]")) {
    return *done;
  }
  auto endpoint = bring_up(o, "src");
  auto fail = [&](const std::string& message) {
    if (o.json) emit_event("failed", {{"role", "src"}, {"outcome", "unknown"}, {"error", message}});
    std::cerr << "pagewire outcome: " << message << "\n";
    return 3;
  };
  if (!endpoint) return fail(endpoint.error().message);
  if (auto up = endpoint->link.await_up(o.timeout_s * 1000); !up) return fail(up.error().message);
  auto answered = migration::query_commit_outcome(endpoint->link, session, wait_s * 1000);
  if (!answered) return fail(answered.error().message);
  if (o.json) {
    emit_event("outcome", {{"role", "src"}, {"session", session}, {"outcome", migration::to_string(*answered)}});
  } else {
    std::cout << "session " << session << ": " << migration::to_string(*answered) << ": " << advice_for(*answered) << "\n";
  }
  return exit_code_of(*answered);
}

}  // namespace pagewire::cli
