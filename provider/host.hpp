// voicebot-provider's actors: the host (one per process) speaks the CAF
// provider protocol with the server's gateway; each bot run is an actor
// that lives from its join until it is stopped. Built against the protocol
// (protocol/protocol.hpp) only, never the server's local vocabulary.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/timespan.hpp>

#include "protocol/protocol.hpp"
#include "provider/gateways.hpp"

namespace vb::voice {
class engine;
} // namespace vb::voice

namespace vb::provider_atom {
/// Try to connect to the server now (the reconnect timer).
using connect = caf::atom_constant<caf::atom("p_connect")>;
/// Time for a heartbeat on the given connection.
using tick = caf::atom_constant<caf::atom("p_tick")>;
/// Register again on the given connection (after a rate-limited attempt).
using retry = caf::atom_constant<caf::atom("p_retry")>;
/// The drain's deadline (plus its grace) has passed.
using drain_end = caf::atom_constant<caf::atom("p_drainend")>;
/// A run's voice was fenced: its token refused, the member runs elsewhere.
using fenced = caf::atom_constant<caf::atom("p_fenced")>;
} // namespace vb::provider_atom

namespace vb {

/// The bots this program can host.
const std::vector<std::string>& known_bots();

struct host_config {
  /// The servers' provider gateways, in the order it tries them: the first
  /// first, the next one when connecting fails or the link drops (round
  /// robin). Never empty.
  std::vector<gateway_address> gateways{{"127.0.0.1", 8001}};
  /// The actor that connects to them: the middleman's when null, or the
  /// mutual TLS transport's (tls/caf_transport.hpp), the same interface.
  caf::io::middleman_actor connector;
  std::string name = "voicebot-provider";
  std::string description;
  std::string key;
  std::string state_file = "provider_state.json";
  std::vector<std::string> bots{"echo", "greeter", "listener"};
  /// The bots' voice (provider/voice/), or null: text only.
  std::shared_ptr<voice::engine> voice;
  caf::timespan heartbeat_interval = std::chrono::seconds(5);
  /// The most runs it takes at once: its heartbeats announce load (runs /
  /// max_runs) and capacity (max_runs - runs); a join beyond is refused.
  uint64_t max_runs = 100;
  /// SIGTERM: how long the server may keep its runs while it drains.
  caf::timespan drain_timeout = std::chrono::seconds(30);
  /// How long past the drain's timeout it waits for the server to
  /// deregister it before it leaves on its own.
  caf::timespan drain_grace = std::chrono::seconds(3);
  /// How long the last deregistration may take when it stops at once.
  caf::timespan stop_timeout = std::chrono::seconds(2);
  /// Reconnect delays: full jitter over base * 2^attempt, capped at max.
  caf::timespan backoff_base = std::chrono::milliseconds(200);
  caf::timespan backoff_max = std::chrono::seconds(5);
  /// How long a call to the server may take.
  caf::timespan call_timeout = std::chrono::seconds(5);
  /// The protocol version this provider says it speaks: protocol_version,
  /// except in tests that play a provider of another version.
  uint32_t protocol_version = vb::protocol_version;
};

/// The host's interface: the protocol the server calls, plus its own timers,
/// its bots' lines and the shutdown request of main().
using host_actor = bot_host_actor::extend<
  // Connect now (timer).
  caf::reacts_to<provider_atom::connect>,
  // Heartbeat on connection `n` (timer).
  caf::reacts_to<provider_atom::tick, uint64_t>,
  // Register again on connection `n` (timer, after rate_limited).
  caf::reacts_to<provider_atom::retry, uint64_t>,
  // The drain timed out (timer): stop the runs, deregister, quit.
  caf::reacts_to<provider_atom::drain_end>,
  // A run's voice was fenced (run id, why): the run stops.
  caf::reacts_to<provider_atom::fenced, std::string, std::string>,
  // A bot run says something (lobby id, its session id, text).
  caf::reacts_to<atom::say, std::string, std::string, std::string>,
  // The first SIGTERM: drain (no new joins, the runs stay), then quit
  // normally once the server deregistered it, it runs nothing any more, or
  // the drain timed out.
  caf::reacts_to<atom::drain>,
  // A second SIGTERM, or SIGINT: stop every run and deregister now; answers
  // whether the server confirmed.
  caf::replies_to<atom::deregister>::with<bool>>;

struct host_state {
  static inline constexpr const char* name = "provider-host";

  struct run_entry {
    bot_run value;
    caf::actor actor;
  };

  host_actor::pointer self = nullptr;
  host_config config;
  std::string provider_id; // empty until the first registration
  provider_gateway_actor gateway;
  /// Random, made once per process start: the server tells a restarted
  /// provider from a removed one by it (SPEC §7).
  std::string instance_id;
  bool connecting = false;
  bool registered = false;
  /// Draining since the first SIGTERM: no new joins, reconnects go on.
  bool draining = false;
  /// When the drain's timeout passes (steady clock).
  std::chrono::steady_clock::time_point drain_deadline;
  /// Stopping for good: no reconnects, no joins.
  bool leaving = false;
  /// A registration is sent and not answered yet.
  bool registering = false;
  /// It left while a registration was in flight: it deregisters once that
  /// is answered (the server may know it by then), then quits.
  bool deregister_when_registered = false;
  uint64_t connection = 0; // counts connections, for heartbeat timers
  uint32_t attempt = 0;    // failed rounds since the last registration
  /// The gateway it is connected to, or tries next (index in gateways).
  size_t current = 0;
  /// Failed attempts in this round of the gateways: a full round backs off.
  size_t tried = 0;
  std::map<std::string, run_entry> runs;
  std::mt19937_64 rng{std::random_device{}()};

  void load_state();
  void save_state();
  const gateway_address& where() const;
  void connect();
  void connect_failed();
  void reconnect_later();
  void say_hello();
  void interface_differs(caf::strong_actor_ptr ptr,
                         const std::set<std::string>& ifs);
  caf::timespan backoff_delay();
  void register_now();
  void registration_failed(const caf::error& err);
  void drop_gateway();
  void give_up(const caf::error& reason);
  void link_lost(const caf::error& reason);
  void heartbeat_now(uint64_t conn);
  void heartbeat_failed(uint64_t conn, const caf::error& err);
  heartbeat report() const;
  void start_drain();
  void ask_drain();
  void stop_runs(const char* why);
  void leave(const std::string& why, bool deregister);
  void deregister_and_quit();
  std::vector<bot_run> run_list() const;
  caf::expected<std::string> start_run(const dispatch_request& req);
  bool stop_run(const std::string& run_id, const char* why);
};

host_actor::behavior_type
provider_host(host_actor::stateful_pointer<host_state> self,
              host_config config);

} // namespace vb
