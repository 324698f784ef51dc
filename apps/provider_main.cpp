// voicebot-provider: hosts bots for voicebot-server over the CAF provider
// protocol. Wiring only: options → actor system → host actor → wait for
// SIGTERM/SIGINT → deregister → exit 0.
//
// Exit codes: 0 stopped by a signal; 2 bad flags; 3 registration refused
// (wrong or missing key, invalid registration); 5 the server speaks another
// version of the CAF provider protocol (docs/caf-providers.md).
#include <csignal>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "apps/caf_runtime.hpp"
#include "apps/stop_signals.hpp"
#include "model/validate.hpp"
#include "provider/host.hpp"

namespace {

using signal_atom = caf::atom_constant<caf::atom("p_signal")>;

caf::timespan seconds(double s) {
  return std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double>(s));
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> result;
  std::stringstream in{list};
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty())
      result.push_back(item);
  return result;
}

} // namespace

int main(int argc, char** argv) {
  vb::host_config cfg;
  std::string bots = "echo,greeter";
  std::string log_level = "info";
  double heartbeat = 5;
  double backoff_max = 5;
  CLI::App app{"voicebot-provider: hosts bots for voicebot-server over CAF"};
  app.option_defaults()->always_capture_default();
  app.add_option("--server-host", cfg.server_host,
                 "address of the server's provider gateway");
  app.add_option("--server-port", cfg.server_port,
                 "port of the server's provider gateway");
  app.add_option("--name", cfg.name, "provider name shown by the server");
  app.add_option("--description", cfg.description, "provider description");
  app.add_option("--key", cfg.key, "provider key, when the server needs one");
  app.add_option("--state-file", cfg.state_file,
                 "where the provider keeps its provider_id");
  app.add_option("--bots", bots, "comma list of bots to host");
  app.add_option("--heartbeat-interval", heartbeat,
                 "seconds between heartbeats")
    ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--max-backoff", backoff_max,
                 "longest wait between reconnect attempts, in seconds")
    ->check(CLI::Range(0.1, 3600.0));
  // Hidden: plays a provider of another protocol version (the tests).
  app.add_option("--protocol-version", cfg.protocol_version,
                 "the CAF provider protocol version to speak")
    ->group("");
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn or error")
    ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  cfg.bots = split(bots);
  if (cfg.bots.empty()) {
    std::cerr << "voicebot-provider: --bots: at least one bot\n";
    return 2;
  }
  for (auto& b : cfg.bots) {
    auto& known = vb::known_bots();
    if (std::find(known.begin(), known.end(), b) == known.end()) {
      std::cerr << "voicebot-provider: --bots: unknown bot '" << b
                << "' (this program hosts echo and greeter)\n";
      return 2;
    }
  }
  if (cfg.name.empty() || cfg.name.size() > vb::max_name_length) {
    std::cerr << "voicebot-provider: --name: 1 to " << vb::max_name_length
              << " characters\n";
    return 2;
  }
  cfg.heartbeat_interval = seconds(heartbeat);
  cfg.backoff_max = seconds(backoff_max);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  auto signals = vb::block_stop_signals();

  vb::caf_runtime_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto host = sys.spawn(vb::provider_host, cfg);
  spdlog::info("voicebot-provider {} hosting {} for {}:{}", cfg.name, bots,
               cfg.server_host, cfg.server_port);

  caf::scoped_actor self{sys};
  self->monitor(host);
  // Signals arrive on their own thread and become a message to main.
  std::thread waiter{[&sys, me = caf::actor_cast<caf::actor>(self), signals]() mutable {
    int sig = 0;
    sigwait(&signals, &sig);
    caf::anon_send(me, signal_atom::value, sig);
  }};
  int rc = 0;
  bool waiting = true;
  while (waiting)
    self->receive(
      [&](signal_atom, int sig) {
        spdlog::info("{} received: deregistering",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
        self->request(host, std::chrono::seconds(5), vb::atom::deregister_v)
          .receive([](bool) {},
                   [&](caf::error& err) {
                     spdlog::warn("deregistration: {}", sys.render(err));
                   });
        waiting = false;
      },
      [&](caf::down_msg& msg) {
        // The host gave up: the server refused its configuration (3), or
        // speaks another protocol version (5); retrying cannot help.
        rc = vb::code_of(msg.reason) == vb::ec::protocol_mismatch ? 5 : 3;
        spdlog::error("provider stopped (exit {}): {}", rc,
                      sys.render(msg.reason));
        waiting = false;
      });
  if (rc != 0) {
    // The signal thread is still in sigwait: wake it.
    pthread_kill(waiter.native_handle(), SIGTERM);
  }
  waiter.join();
  caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
  return rc;
}
