// voicebot-provider: hosts bots for voicebot-server over the CAF provider
// protocol. Wiring only: options → actor system → host actor → wait for
// signals: the first SIGTERM drains (the host quits once drained), a second
// SIGTERM or a SIGINT stops at once (deregister → exit 0).
//
// Exit codes: 0 stopped by a signal (drained, or at once); 1 an unexpected
// failure; 2 bad flags; 3 registration refused (wrong or missing key,
// invalid registration); 4 the server removed this provider on purpose (410:
// it must not come back); 5 the server speaks another version of the CAF
// provider protocol (docs/caf-providers.md).
#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
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
#include "provider/gateways.hpp"
#include "provider/host.hpp"
#include "provider/voice/engine.hpp"
#include "tls/caf_transport.hpp"

namespace {

using signal_atom = caf::atom_constant<caf::atom("p_signal")>;
/// The drain took longer than the host's own timer allows: stop now.
using backstop_atom = caf::atom_constant<caf::atom("p_backstop")>;

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

/// The exit code for the reason the host stopped on its own.
int exit_code(const caf::error& reason) {
  if (!reason || reason == caf::exit_reason::normal)
    return 0; // drained
  switch (vb::code_of(reason)) {
    case vb::ec::key_missing:
    case vb::ec::key_invalid:
    case vb::ec::invalid:
      return 3;
    case vb::ec::removed:
      return 4;
    case vb::ec::protocol_mismatch:
      return 5;
    default:
      return 1;
  }
}

/// The phrases `listener` recognizes when no --listener-phrases file names
/// others (docs/voice-bots.md).
const std::vector<std::string> default_phrases{
  "hello computer", "good morning", "good night", "thank you", "goodbye",
  "turn on the lights", "turn off the lights", "what time is it",
  "play some music", "stop the music", "yes", "no"};

/// One phrase per line, lower case; blank lines and # comments skipped.
bool read_phrases(const std::string& path, std::vector<std::string>& out) {
  std::ifstream in{path};
  if (!in)
    return false;
  out.clear();
  for (std::string line; std::getline(in, line);) {
    std::transform(line.begin(), line.end(), line.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    auto start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#')
      continue;
    out.push_back(line.substr(start, line.find_last_not_of(" \t\r") + 1 - start));
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  vb::host_config cfg;
  std::string bots = "echo,greeter,listener";
  std::string log_level = "info";
  double heartbeat = 5;
  double backoff_max = 5;
  double drain_timeout = 30;
  std::vector<std::string> servers;
  std::string server_host = "127.0.0.1";
  uint16_t server_port = 8001;
  CLI::App app{"voicebot-provider: hosts bots for voicebot-server over CAF"};
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version",
                       std::string{"voicebot-provider "} + VB_VERSION,
                       "print the version and exit");
  auto server_opt
    = app
        .add_option("--server", servers,
                    "a server's provider gateway, HOST:PORT or [IPv6]:PORT; "
                    "repeat it for several: it connects to the first, and "
                    "moves to the next (round robin, keeping its id and "
                    "runs) when connecting fails or the link drops; not "
                    "with --server-host/--server-port")
        ->allow_extra_args(false);
  auto host_opt = app.add_option("--server-host", server_host,
                                 "address of the one server's provider "
                                 "gateway (--server names several)");
  auto port_opt = app.add_option("--server-port", server_port,
                                 "port of the one server's provider gateway")
                    ->check(CLI::Range(1, 65535));
  app.add_option("--name", cfg.name, "provider name shown by the server");
  app.add_option("--description", cfg.description, "provider description");
  app.add_option("--key", cfg.key, "provider key, when the server needs one");
  std::string tls_cert, tls_key, tls_ca;
  app.add_option("--tls-cert", tls_cert,
                 "TLS certificate chain (PEM) of this provider, signed by the "
                 "CA the server's --caf-tls-ca names");
  app.add_option("--tls-key", tls_key, "private key (PEM) of --tls-cert");
  app.add_option("--tls-ca", tls_ca,
                 "CA certificate (PEM) that must sign the server's "
                 "certificate");
  app.add_option("--state-file", cfg.state_file,
                 "where the provider keeps its provider_id");
  app.add_option("--bots", bots, "comma list of bots to host");
  std::vector<std::string> ice_addresses;
  std::string phrases_file;
  bool no_voice = false;
  double connect_timeout = 20;
  app.add_option("--ice-address", ice_addresses,
                 "a local address the bots' voice gathers ICE candidates on "
                 "(repeatable); none: every address but loopback");
  app.add_option("--listener-phrases", phrases_file,
                 "a file of the phrases listener recognizes, one per line "
                 "(words of pocketsphinx's en-us dictionary)");
  app.add_flag("--no-voice", no_voice,
               "the bots only chat: no WebRTC voice (SPEC §9)");
  app.add_option("--voice-connect-timeout", connect_timeout,
                 "seconds a bot's peer connection may take to come up before "
                 "it is made anew")
    ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--heartbeat-interval", heartbeat,
                 "seconds between heartbeats")
    ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--max-backoff", backoff_max,
                 "longest wait between reconnect attempts (with several "
                 "--server: between rounds of them), in seconds")
    ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--max-runs", cfg.max_runs,
                 "most bot runs at once (heartbeats announce load and "
                 "capacity from it)")
    ->check(CLI::Range(uint64_t{1}, uint64_t{100000}));
  app.add_option("--drain-timeout", drain_timeout,
                 "SIGTERM drains: seconds the server may keep its runs "
                 "(a second SIGTERM stops at once)")
    ->check(CLI::Range(0.0, 86400.0))
    ->check(CLI::PositiveNumber);
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
  if (server_opt->count() > 0
      && (host_opt->count() > 0 || port_opt->count() > 0)) {
    std::cerr << "voicebot-provider: --server names every gateway, "
                 "--server-host/--server-port name one: give either, not "
                 "both\n";
    return 2;
  }
  if (server_opt->count() == 0) {
    if (server_host.empty()) {
      std::cerr << "voicebot-provider: --server-host: empty host\n";
      return 2;
    }
    cfg.gateways = {vb::gateway_address{server_host, server_port}};
  } else {
    cfg.gateways.clear();
    for (auto& text : servers) {
      std::string why;
      auto gw = vb::parse_gateway(text, why);
      if (!gw) {
        std::cerr << "voicebot-provider: --server '" << text << "': " << why
                  << "\n";
        return 2;
      }
      cfg.gateways.push_back(std::move(*gw));
    }
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
                << "' (this program hosts echo, greeter and listener)\n";
      return 2;
    }
  }
  if (cfg.name.empty() || cfg.name.size() > vb::max_name_length) {
    std::cerr << "voicebot-provider: --name: 1 to " << vb::max_name_length
              << " characters\n";
    return 2;
  }
  const bool tls = !tls_cert.empty();
  if (tls != !tls_key.empty() || tls != !tls_ca.empty()) {
    std::cerr << "voicebot-provider: --tls-cert, --tls-key and --tls-ca go "
                 "together (mutual TLS): give all three or none\n";
    return 2;
  }
  if (tls
      && (!vb::readable_pem(tls_cert, "CERTIFICATE")
          || !vb::readable_pem(tls_key, "PRIVATE KEY")
          || !vb::readable_pem(tls_ca, "CERTIFICATE"))) {
    std::cerr << "voicebot-provider: --tls-cert, --tls-key and --tls-ca must "
                 "be readable PEM files (a certificate, its private key, a "
                 "CA certificate)\n";
    return 2;
  }
  cfg.heartbeat_interval = seconds(heartbeat);
  cfg.backoff_max = seconds(backoff_max);
  cfg.drain_timeout = seconds(drain_timeout);
  // Past the drain's timeout the server deregisters it (a heartbeat or two
  // tells): wait that long before leaving on its own.
  cfg.drain_grace = std::max<caf::timespan>(std::chrono::seconds(2),
                                            2 * cfg.heartbeat_interval);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  auto signals = vb::block_stop_signals();

  // The voice's threads (GLib's loop, GStreamer's) start after the stop
  // signals are blocked, so that only the signal thread takes them.
  std::vector<std::string> phrases = default_phrases;
  if (!phrases_file.empty() && !read_phrases(phrases_file, phrases)) {
    std::cerr << "voicebot-provider: --listener-phrases: cannot read "
              << phrases_file << "\n";
    return 2;
  }
  if (auto unknown = vb::voice::unknown_words(phrases); !unknown.empty()
      && !no_voice) {
    std::string list;
    for (auto& w : unknown)
      list += (list.empty() ? "" : ", ") + w;
    std::cerr << "voicebot-provider: --listener-phrases: not in the en-us "
                 "dictionary: " << list << "\n";
    return 2;
  }
  if (!no_voice) {
    std::string missing;
    if (vb::voice::available(missing)) {
      vb::voice::engine_config vc;
      vc.ice_addresses = ice_addresses;
      vc.listener_phrases = phrases;
      vc.connect_timeout = std::chrono::milliseconds(
        static_cast<long>(connect_timeout * 1000));
      cfg.voice = std::make_shared<vb::voice::engine>(std::move(vc));
    } else {
      spdlog::warn("the bots have no voice: GStreamer lacks {} "
                   "(scripts/setup-deps installs them)", missing);
    }
  }

  std::shared_ptr<const vb::tls::context> tls_context;
  if (tls) {
    std::string err;
    tls_context = vb::tls::context::load(
      {tls_cert, tls_key, tls_ca},
      [](const std::string& peer, const std::string& reason) {
        spdlog::warn("TLS handshake with {} failed: {}", peer, reason);
      },
      err);
    if (!tls_context) {
      std::cerr << "voicebot-provider: --tls-*: " << err << "\n";
      return 2;
    }
  }
  vb::caf_runtime_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto transport = tls ? vb::tls::caf_transport::start(sys, tls_context) : nullptr;
  // The transport's actor is detached: no handle to it may outlive `sys`
  // (its destructor waits for the actor's thread), so `cfg` keeps none.
  auto host_cfg = cfg;
  if (transport)
    host_cfg.connector = transport->actor();
  auto host = sys.spawn(vb::provider_host, std::move(host_cfg));
  if (cfg.voice)
    cfg.voice->on_events(
      [host](const std::string& lobby, const std::string& session,
             const std::string& text) {
        caf::anon_send(host, vb::atom::say_v, lobby, session, text);
      },
      [host](const std::string& run_id, const std::string& why) {
        caf::anon_send(host, vb::provider_atom::fenced::value, run_id, why);
      });
  spdlog::info("voicebot-provider {} hosting {} for {}{}", cfg.name, bots,
               vb::to_string(cfg.gateways), tls ? " (mutual TLS)" : "");

  caf::scoped_actor self{sys};
  self->monitor(host);
  // Signals arrive on their own thread and become messages to main, every
  // one of them (a second SIGTERM means something), until main is done.
  std::atomic<bool> done{false};
  std::thread waiter{[&done, me = caf::actor_cast<caf::actor>(self),
                      signals]() mutable {
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0)
        continue;
      if (done.load())
        return;
      caf::anon_send(me, signal_atom::value, sig);
    }
  }};
  auto stop_now = [&] {
    // Deregister if it can within a short timeout; exit 0 either way.
    self
      ->request(host, cfg.stop_timeout + std::chrono::seconds(1),
                vb::atom::deregister_v)
      .receive([](bool) {},
               [&](caf::error& err) {
                 spdlog::warn("deregistration: {}", sys.render(err));
               });
  };
  int rc = 0;
  bool waiting = true;
  bool draining = false;
  while (waiting)
    self->receive(
      [&](signal_atom, int sig) {
        if (sig == SIGTERM && !draining) {
          draining = true;
          spdlog::info("SIGTERM received: draining for up to {} s (a second "
                       "SIGTERM, or SIGINT, stops at once)",
                       drain_timeout);
          self->send(host, vb::atom::drain_v);
          // The host ends the drain itself; this only guards against a
          // host that does not.
          self->delayed_send(caf::actor_cast<caf::actor>(self),
                             cfg.drain_timeout + cfg.drain_grace
                               + cfg.stop_timeout + std::chrono::seconds(5),
                             backstop_atom::value);
          return;
        }
        spdlog::info("{} received: stopping now",
                     sig == SIGTERM ? "second SIGTERM" : "SIGINT");
        stop_now();
        waiting = false;
      },
      [&](backstop_atom) {
        spdlog::warn("the drain did not end in time: stopping now");
        stop_now();
        waiting = false;
      },
      [&](caf::down_msg& msg) {
        // The host stopped on its own: drained (0), or it gave up because
        // retrying cannot help: the server refused its configuration (3),
        // removed it on purpose (4) or speaks another protocol version (5).
        rc = exit_code(msg.reason);
        if (rc == 0)
          spdlog::info("provider stopped: drained");
        else
          spdlog::error("provider stopped (exit {}): {}", rc,
                        sys.render(msg.reason));
        waiting = false;
      });
  // The signal thread is still in sigwait: wake it.
  done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
  // The voice's loop ends before the actor system: no say after it.
  if (cfg.voice)
    cfg.voice->shutdown();
  return rc;
}
