// The CAF provider protocol on its own: built with VB_WIRE_ONLY (through
// vb_provider), so nothing here can reach the server's local vocabulary.
// Pins what protocol version 3 puts on the wire, checks CAF's interface check
// between versions over a real loopback connection (two actor systems in one
// process, each with its own middleman), that voicebot-provider's host
// gives up with protocol_mismatch at a server of another version, and what
// the host tells a gateway: its instance, its heartbeats' load, capacity and
// runs, its drain on SIGTERM, and how it takes removed and rate_limited.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "protocol/protocol.hpp"
#include "provider/host.hpp"
#include "loopback.hpp"
#include "wire_pins.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

// -- the gateways of every protocol version ----------------------------------

// A stub gateway of any version's interface is one template (gateway_stub)
// that takes, for each message of the interface, its handler below. A new
// protocol version adds its interface here, a handler for each message it
// adds, and its row in other_versions().

// Their messages, each once. This version's are protocol.hpp's.
using hello_msg = caf::replies_to<atom::hello, uint32_t>::with<uint32_t>;
using registration_msg =
  caf::replies_to<atom::registration, uint32_t, provider_registration,
                  bot_host_actor, std::vector<bot_run>>::with<registration_result>;
using heartbeat_msg =
  caf::replies_to<atom::heartbeat, std::string, heartbeat>::with<double>;
using drain_msg =
  caf::replies_to<atom::drain, std::string, std::string, double>::with<bool>;
using deregister_msg =
  caf::replies_to<atom::deregister, std::string, std::string>::with<bool>;
using say_msg =
  caf::reacts_to<atom::say, std::string, std::string, std::string>;
/// The registration before protocol versions: without a version.
using unversioned_registration_msg =
  caf::replies_to<atom::registration, provider_registration, bot_host_actor,
                  std::vector<bot_run>>::with<registration_result>;
/// The heartbeat of versions 0 and 1: the id alone.
using id_heartbeat_msg =
  caf::replies_to<atom::heartbeat, std::string>::with<double>;
/// A message of a later version that this one does not have.
using later_heartbeat_msg =
  caf::replies_to<atom::heartbeat, std::string, double>::with<double>;

static_assert(std::is_same<provider_gateway_actor,
                           caf::typed_actor<hello_msg, registration_msg,
                                            heartbeat_msg, drain_msg,
                                            deregister_msg, say_msg>>::value,
              "this version's gateway is protocol.hpp's");

/// The gateway before protocol versions (voicebot-server until protocol
/// version 1): no hello, a registration without a version.
using v0_gateway_actor =
  caf::typed_actor<unversioned_registration_msg, id_heartbeat_msg,
                   deregister_msg, say_msg>;

/// The gateway of protocol version 1: hello as in every version; a
/// heartbeat that carries only the id, and no drain.
using v1_gateway_actor =
  caf::typed_actor<hello_msg, registration_msg, id_heartbeat_msg,
                   deregister_msg, say_msg>;

/// A later version's gateway: hello as in every version, and a message this
/// version does not have.
using v4_gateway_actor = provider_gateway_actor::extend<later_heartbeat_msg>;

/// Polls until `done()` or the limit; answers whether it got there.
template <class Pred>
bool wait_until(Pred done, caf::timespan limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// What a stub gateway was sent, and what it answers (it runs on the server
/// node's threads; the test reads and scripts it from its own).
struct seen {
  std::atomic<int> hellos{0};
  std::atomic<int> registrations{0};
  std::atomic<int> deregistrations{0};
  /// The ec a heartbeat is answered with; none: last_seen.
  std::atomic<ec> heartbeat_answer{ec::none};
  /// How long a registration is held before it is answered (the stub's
  /// worker thread sleeps: a registration in flight, for the test).
  std::atomic<int> registration_delay_ms{0};

  struct drain_call {
    std::string id;
    std::string key;
    double timeout;
  };

  mutable std::mutex mtx;
  // Guarded by mtx:
  std::vector<provider_registration> regs;
  /// The runs each registration listed.
  std::vector<std::vector<bot_run>> reg_runs;
  std::vector<std::chrono::steady_clock::time_point> reg_times;
  std::vector<heartbeat> heartbeats;
  std::vector<drain_call> drains;
  /// The answers of the next registrations, in order, before any succeeds.
  std::deque<caf::error> refusals;

  template <class F>
  auto locked(F f) const {
    std::lock_guard<std::mutex> guard{mtx};
    return f();
  }

  size_t heartbeat_count() const {
    return locked([&] { return heartbeats.size(); });
  }

  size_t drain_count() const {
    return locked([&] { return drains.size(); });
  }

  /// Waits until `n` registrations arrived; answers whether they did.
  bool wait_registrations(int n, caf::timespan limit = 10s) const {
    return wait_until([&] { return registrations >= n; }, limit);
  }
};

caf::error refusal(uint32_t theirs, uint32_t speaks) {
  return make_error(ec::protocol_mismatch,
                    "the provider speaks CAF provider protocol version "
                      + std::to_string(theirs) + ", this server speaks version "
                      + std::to_string(speaks));
}

// What a stub gateway does with each message of any version: one handler a
// message, chosen by the message's signature. `speaks` is the version its
// hello answers and its registration takes; `log` is what the test reads.

template <class Message>
struct for_message {};

using log_ptr = std::shared_ptr<seen>;

auto handler(for_message<hello_msg>, uint32_t speaks, const log_ptr& log) {
  return [=](atom::hello, uint32_t v) -> caf::result<uint32_t> {
    ++log->hellos;
    if (v != speaks)
      return refusal(v, speaks);
    return speaks;
  };
}

auto handler(for_message<registration_msg>, uint32_t speaks,
             const log_ptr& log) {
  return [=](atom::registration, uint32_t v, const provider_registration& reg,
             const bot_host_actor&, const std::vector<bot_run>& runs)
           -> caf::result<registration_result> {
    ++log->registrations;
    if (auto ms = log->registration_delay_ms.load(); ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds{ms});
    if (v != speaks)
      return refusal(v, speaks);
    auto refused = log->locked([&] {
      log->regs.push_back(reg);
      log->reg_runs.push_back(runs);
      log->reg_times.push_back(std::chrono::steady_clock::now());
      caf::error err;
      if (!log->refusals.empty()) {
        err = log->refusals.front();
        log->refusals.pop_front();
      }
      return err;
    });
    if (refused)
      return refused;
    return registration_result{"p-1", {}}; // the id the tests expect
  };
}

auto handler(for_message<unversioned_registration_msg>, uint32_t,
             const log_ptr& log) {
  return [=](atom::registration, const provider_registration&,
             const bot_host_actor&, const std::vector<bot_run>&) {
    ++log->registrations;
    return registration_result{"p-0", {}};
  };
}

auto handler(for_message<heartbeat_msg>, uint32_t, const log_ptr& log) {
  return [=](atom::heartbeat, const std::string&,
             const heartbeat& hb) -> caf::result<double> {
    log->locked([&] {
      log->heartbeats.push_back(hb);
      return 0;
    });
    if (auto code = log->heartbeat_answer.load(); code != ec::none)
      return make_error(code, "scripted");
    return 1.0;
  };
}

auto handler(for_message<id_heartbeat_msg>, uint32_t, const log_ptr&) {
  return [=](atom::heartbeat, const std::string&) { return 1.0; };
}

auto handler(for_message<later_heartbeat_msg>, uint32_t, const log_ptr&) {
  return [=](atom::heartbeat, const std::string&, double) { return 1.0; };
}

auto handler(for_message<drain_msg>, uint32_t, const log_ptr& log) {
  return [=](atom::drain, const std::string& id, const std::string& key,
             double timeout) {
    log->locked([&] {
      log->drains.push_back({id, key, timeout});
      return 0;
    });
    return true;
  };
}

auto handler(for_message<deregister_msg>, uint32_t, const log_ptr& log) {
  return [=](atom::deregister, const std::string&, const std::string&) {
    ++log->deregistrations;
    return true;
  };
}

auto handler(for_message<say_msg>, uint32_t, const log_ptr&) {
  return [=](atom::say, const std::string&, const std::string&,
             const std::string&) {};
}

template <class... Messages>
caf::typed_behavior<Messages...>
stub_behavior(caf::detail::type_list<Messages...>, uint32_t speaks,
              const log_ptr& log) {
  return {handler(for_message<Messages>{}, speaks, log)...};
}

/// A gateway of the interface `Gateway` (of any version) that speaks
/// protocol version `speaks`: it handles each message of its interface, and
/// only those.
template <class Gateway>
typename Gateway::behavior_type
gateway_stub(typename Gateway::pointer, uint32_t speaks, log_ptr log) {
  return stub_behavior(typename Gateway::signatures{}, speaks, log);
}

/// Spawns a stub gateway of the interface `Gateway` on `sys` and publishes it
/// on a loopback `port` (0: any); answers the port and keeps the stub's
/// handle in `stub`.
template <class Gateway>
uint16_t publish_gateway(caf::actor_system& sys, caf::actor& stub, log_ptr log,
                         uint32_t speaks, uint16_t port) {
  auto gw = sys.spawn(gateway_stub<Gateway>, speaks, std::move(log));
  stub = caf::actor_cast<caf::actor>(gw);
  auto published = caf::io::publish(gw, port, "127.0.0.1", true);
  REQUIRE(published);
  return *published;
}

// -- two nodes in one process ----------------------------------------------------

struct net_config : caf::actor_system_config {
  net_config() {
    add_protocol_types(*this);
    load<caf::io::middleman>();
    set("logger.verbosity", caf::atom("quiet"));
  }
};

/// A "server" node that publishes a stub gateway on a loopback port, and a
/// "provider" node that connects to it.
struct two_nodes {
  net_config server_cfg;
  net_config client_cfg;
  caf::actor_system server{server_cfg};
  caf::actor_system client{client_cfg};
  log_ptr log = std::make_shared<seen>();
  caf::actor stub;
  std::vector<host_actor> hosts;
  std::string dir;

  two_nodes() {
    char tmpl[] = "/tmp/vb-protocol-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }

  ~two_nodes() {
    // Stop every host at once (its runs with it), as a second SIGTERM does.
    caf::scoped_actor self{client};
    for (auto& host : hosts) {
      self->request(host, 5s, atom::deregister_v)
        .receive([](bool) {}, [](caf::error&) {});
      caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
    }
    if (stub)
      caf::anon_send_exit(stub, caf::exit_reason::user_shutdown);
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  /// Publishes the server's stub gateway: of the interface `Gateway`,
  /// speaking version `speaks`, on `port` (0: any); answers the port.
  template <class Gateway = provider_gateway_actor>
  uint16_t publish_stub(uint32_t speaks = protocol_version,
                        uint16_t port = 0) {
    return publish_gateway<Gateway>(server, stub, log, speaks, port);
  }

  /// The host's config for a gateway on `port`: quick heartbeats, short
  /// waits.
  host_config config(uint16_t port) {
    host_config hc;
    hc.gateways = {{"127.0.0.1", port}};
    hc.state_file = dir + "/state.json";
    hc.call_timeout = 3s;
    hc.backoff_max = 100ms;
    hc.heartbeat_interval = 50ms;
    return hc;
  }

  /// Starts voicebot-provider's host; stopped (at once) when the test ends.
  host_actor start_host(host_config hc) {
    auto host = client.spawn(provider_host, std::move(hc));
    hosts.push_back(host);
    return host;
  }

  /// Starts voicebot-provider's host and waits for its first registration.
  host_actor registered_host(host_config hc) {
    auto host = start_host(std::move(hc));
    REQUIRE(log->wait_registrations(1));
    return host;
  }

  /// The same with the config of a stub gateway of its own.
  host_actor registered_host() {
    return registered_host(config(publish_stub()));
  }

  /// The host registered, and deregistered, so many times.
  void check_registrations(int registrations, int deregistrations) {
    CHECK(log->registrations == registrations);
    CHECK(log->deregistrations == deregistrations);
  }

  /// A registered host running the member "s-a", draining (as after the
  /// first SIGTERM).
  host_actor draining_host() {
    auto host = registered_host();
    REQUIRE(join(host, "s-a"));
    start_drain(host);
    return host;
  }

  /// Sends the host the drain of SIGTERM and waits until it asked the server
  /// for its drain.
  void start_drain(const host_actor& host) {
    caf::anon_send(host, atom::drain_v);
    REQUIRE(wait_until([&] { return log->drain_count() == 1; }));
  }

  /// Waits until the host stops (or fails the test after `limit`); returns
  /// why it stopped.
  caf::error wait_exit(const host_actor& host, caf::timespan limit = 10s) {
    caf::scoped_actor self{client};
    self->monitor(host);
    caf::error reason;
    bool stopped = false;
    self->receive(
      [&](caf::down_msg& msg) {
        reason = msg.reason;
        stopped = true;
      },
      caf::after(limit) >> [] {});
    if (!stopped)
      FAIL("the provider's host did not stop");
    return reason;
  }

  /// Runs voicebot-provider's host against the port until it stops (or
  /// fails the test after `limit`); returns why it stopped.
  caf::error host_exit(uint16_t port, caf::timespan limit = 10s) {
    return wait_exit(start_host(config(port)), limit);
  }

  /// A join sent to the host as the server would; answers the run id or
  /// the error's code.
  caf::expected<std::string> join(const host_actor& host,
                                  const std::string& session) {
    caf::scoped_actor self{client};
    caf::expected<std::string> result{std::string{}};
    self
      ->request(host, 5s, atom::join_v,
                dispatch_request{"echo", "lobby-1", session, "Echo", ""})
      .receive([&](std::string& run_id) { result = std::move(run_id); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  bool stop(const host_actor& host, const std::string& run_id) {
    caf::scoped_actor self{client};
    bool had = false;
    self->request(host, 5s, atom::stop_v, run_id)
      .receive([&](bool x) { had = x; }, [](caf::error&) {});
    return had;
  }

  /// What the gateway at `to` answers a message sent untyped: "answered"
  /// (an `Answer`), or the error as the client renders it.
  template <class Answer, class... Ts>
  std::string untyped_answer(const caf::actor& to, Ts... xs) {
    caf::scoped_actor self{client};
    std::string outcome;
    self->request(to, 5s, std::move(xs)...)
      .receive([&](Answer&) { outcome = "answered"; },
               [&](caf::error& err) { outcome = client.render(err); });
    return outcome;
  }

  /// The last heartbeat the stub got, after waiting for `n` more.
  heartbeat next_heartbeats(size_t n = 1) {
    auto have = log->heartbeat_count();
    auto got = wait_until([&] { return log->heartbeat_count() >= have + n; });
    REQUIRE(got);
    return log->locked([&] { return log->heartbeats.back(); });
  }
};

// -- the other versions a provider may meet ----------------------------------

/// A gateway of another protocol version than this provider's.
struct other_version {
  /// Which gateway, as the test reports it.
  std::string name;
  /// Whether its interface is another one than this version's.
  bool other_interface;
  /// Whether it has hello (every version since protocol versions).
  bool has_hello;
  /// What voicebot-provider's refusal of it says.
  std::string refusal;
  /// Publishes its stub on the server node; answers the port.
  std::function<uint16_t(two_nodes&)> publish;
  /// Connects a node with that version's handle (its provider's build).
  std::function<caf::expected<caf::actor>(caf::actor_system&, uint16_t)>
    connect;
  /// Its interface as CAF compares it.
  std::function<std::set<std::string>(caf::actor_system&)> message_types;
};

/// The row of a gateway of the interface `Gateway` that speaks `speaks`.
template <class Gateway>
other_version version_row(std::string name, uint32_t speaks,
                          std::string refusal) {
  other_version row;
  row.name = std::move(name);
  row.other_interface = !std::is_same<Gateway, provider_gateway_actor>::value;
  row.has_hello
    = caf::detail::tl_contains<typename Gateway::signatures, hello_msg>::value;
  row.refusal = std::move(refusal);
  row.publish = [speaks](two_nodes& net) {
    return net.publish_stub<Gateway>(speaks);
  };
  row.connect = [](caf::actor_system& sys,
                   uint16_t port) -> caf::expected<caf::actor> {
    auto handle = caf::io::remote_actor<Gateway>(sys, "127.0.0.1", port);
    if (!handle)
      return std::move(handle.error());
    return caf::actor_cast<caf::actor>(*handle);
  };
  row.message_types = [](caf::actor_system& sys) {
    return sys.message_types<Gateway>();
  };
  return row;
}

/// Every other version a provider may meet, one row each (its name, its
/// interface, the version its hello answers and what the refusal says).
std::vector<other_version> other_versions() {
  return {
    version_row<v0_gateway_actor>("from before protocol versions", 0,
                                  "does not answer hello"),
    version_row<v1_gateway_actor>(
      "of protocol version 1", 1,
      "protocol version 3, this server speaks version 1"),
    version_row<v4_gateway_actor>(
      "of a later version's interface", 4,
      "protocol version 3, this server speaks version 4"),
    // An earlier or later version that kept this interface: only hello
    // tells (version 2 differs in dispatch_request's fields alone).
    version_row<provider_gateway_actor>(
      "of this interface that speaks version 2", 2,
      "protocol version 3, this server speaks version 2"),
    version_row<provider_gateway_actor>(
      "of this interface that speaks version 4", 4,
      "protocol version 3, this server speaks version 4"),
  };
}

template <class T>
std::string wire_bytes(caf::actor_system& sys, T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  if (auto err = sink(x))
    return "error: " + sys.render(err);
  std::ostringstream out;
  for (unsigned char c : buf)
    out << std::hex << std::setw(2) << std::setfill('0') << int{c};
  return out.str();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

// -- the layout ---------------------------------------------------------------------

TEST_CASE("the wire block starts at caf::first_custom_type_id and keeps its "
          "pinned ids and names", "[protocol]") {
  static_assert(caf::id_block::vb_protocol::begin
                == caf::first_custom_type_id);
  auto pins = test::wire_pins();
  // A wire type added without a pin fails here: pin it at the end.
  CHECK(caf::id_block::vb_protocol::end - caf::id_block::vb_protocol::begin
        == pins.size());
  net_config cfg;
  caf::actor_system sys{cfg};
  for (auto& p : pins) {
    INFO(p.name);
    CHECK(p.actual_id == p.id);
    CHECK(p.actual_name == p.name);
    // The name CAF 0.17 writes into every message that holds the type.
    CHECK(sys.types().portable_name(0, p.rtti) == p.name);
  }
}

TEST_CASE("protocol version 3's interfaces and field layouts are pinned: "
          "changing them needs a new version", "[protocol]") {
  // Bumping the version is the moment to update every pin below.
  REQUIRE(protocol_version == 3);
  net_config cfg;
  caf::actor_system sys{cfg};
  CHECK(sys.message_types<provider_gateway_actor>()
        == std::set<std::string>{
          "caf::replies_to<deregistr,@str,@str>::with<bool>",
          "caf::replies_to<drain,@str,@str,double>::with<bool>",
          "caf::replies_to<heartbeat,@str,vb::heartbeat>::with<double>",
          "caf::replies_to<hello,@u32>::with<@u32>",
          "caf::replies_to<register,@u32,vb::provider_registration,"
          "vb::bot_host_actor,std::vector<vb::bot_run>>::with<"
          "vb::registration_result>",
          "caf::replies_to<say,@str,@str,@str>::with<void>",
        });
  CHECK(sys.message_types<bot_host_actor>()
        == std::set<std::string>{
          "caf::replies_to<event,@str,vb::lobby_event>::with<void>",
          "caf::replies_to<join,vb::dispatch_request>::with<@str>",
          "caf::replies_to<stop,@str>::with<bool>",
        });
  // Fields in order (strings are a length and the bytes; the enum and bool
  // one byte; integers and doubles big-endian, doubles as IEEE 754).
  // Version 2 added instance_id and heartbeat_interval to the registration.
  provider_registration reg;
  reg.name = "n";
  reg.base_url = "u";
  reg.description = "d";
  reg.provider_key = "k";
  reg.provider_id = "p";
  reg.bots = {bot_info{"b", "x"}};
  reg.via = transport::caf;
  reg.instance_id = "i";
  reg.heartbeat_interval = 0.5;
  reg.has_runs = true;  // not on the wire (HTTP only)
  reg.runs = {"r"};     // not on the wire (HTTP only)
  CHECK(wire_bytes(sys, reg)
        == "016e01750164016b0170010162017801" "0169" "3fe0000000000000");
  // Version 2's heartbeat: bots (when given), instance, load, capacity,
  // runs (when given).
  heartbeat hb;
  hb.has_bots = true;
  hb.bots = {bot_info{"b", "x"}};
  hb.instance_id = "i";
  hb.load = 0.5;
  hb.capacity = 3;
  hb.has_runs = true;
  hb.runs = {"r1", "r2"};
  CHECK(wire_bytes(sys, hb)
        == "01" "0101620178" "0169" "3fe0000000000000" "0000000000000003"
           "01" "02027231027232");
  // Version 3 added the session token and the server's URL (the voice).
  CHECK(wire_bytes(sys, dispatch_request{"b", "l", "s", "n", "t", "u"})
        == "0162016c0173016e01740175");
  CHECK(wire_bytes(sys, bot_run{"r", "b", "l", "s", "n"})
        == "01720162016c0173016e");
  CHECK(wire_bytes(sys, registration_result{"p", {"r1", "r2"}})
        == "017002027231027232");
  // Version 2 added orphaned and moved_at to the session.
  session member{"s", "n", true, "b", "p", "r", 1.5, true, 3.5, "", false};
  CHECK(wire_bytes(sys, lobby_event{lobby_event_type::chat, "l", member, "t", 2.5})
        == "0463686174016c0173016e010162017001723ff8000000000000"
           "01400c000000000000" "01744004000000000000");
  // The error codes a provider may see keep their values (append only).
  CHECK(static_cast<int>(ec::not_found) == 1);
  CHECK(static_cast<int>(ec::key_missing) == 2);
  CHECK(static_cast<int>(ec::key_invalid) == 3);
  CHECK(static_cast<int>(ec::storage_failed) == 4);
  CHECK(static_cast<int>(ec::unavailable) == 5);
  CHECK(static_cast<int>(ec::rejected) == 6);
  CHECK(static_cast<int>(ec::invalid) == 7);
  CHECK(static_cast<int>(ec::protocol_mismatch) == 8);
  CHECK(static_cast<int>(ec::removed) == 9);
  CHECK(static_cast<int>(ec::rate_limited) == 10);
  CHECK(static_cast<int>(ec::idempotency_key_reused) == 11);
}

TEST_CASE("a rate_limited error carries its detail and retry_after across "
          "the wire", "[protocol]") {
  net_config cfg;
  caf::actor_system sys{cfg};
  auto err = make_error(ec::rate_limited, std::string{"too many"}, 1.25);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE_FALSE(sink(err));
  caf::error back;
  caf::binary_deserializer source{sys, buf};
  REQUIRE_FALSE(source(back));
  CHECK(code_of(back) == ec::rate_limited);
  REQUIRE(back.context().match_elements<std::string, double>());
  CHECK(back.context().get_as<std::string>(0) == "too many");
  CHECK(back.context().get_as<double>(1) == 1.25);
}

TEST_CASE("a lobby event's type crosses the wire as its text, each type "
          "comes back, and a text no type has is refused", "[protocol]") {
  net_config cfg;
  caf::actor_system sys{cfg};
  auto decode = [&](const std::vector<char>& buf, lobby_event& out) {
    caf::binary_deserializer source{sys, buf};
    return source(out);
  };
  for (auto t : {lobby_event_type::member_joined, lobby_event_type::member_left,
                 lobby_event_type::chat, lobby_event_type::member_moved,
                 lobby_event_type::member_orphaned}) {
    INFO(to_string(t));
    lobby_event ev{t, "l", session{}, "", 1};
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    REQUIRE_FALSE(sink(ev));
    lobby_event back;
    REQUIRE_FALSE(decode(buf, back));
    CHECK(back.type == t);
    lobby_event_type parsed;
    CHECK((from_string(to_string(t), parsed) && parsed == t));
  }
  // The same bytes with the text "member_gone": no such type.
  lobby_event ev{lobby_event_type::member_left, "l", session{}, "", 1};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE_FALSE(sink(ev));
  std::string text{buf.begin(), buf.end()};
  auto at = text.find("member_left");
  REQUIRE(at != std::string::npos);
  text.replace(at, 11, "member_gone");
  lobby_event back;
  auto err = decode(std::vector<char>{text.begin(), text.end()}, back);
  CHECK(code_of(err) == ec::invalid);
}

// -- CAF's interface check ------------------------------------------------------------

TEST_CASE("a provider built against another interface is refused when it "
          "connects, before it sends anything", "[protocol]") {
  two_nodes net;
  auto port = net.publish_stub();
  // This version's handle: accepted.
  auto same = caf::io::remote_actor<provider_gateway_actor>(net.client,
                                                             "127.0.0.1", port);
  REQUIRE(same);
  auto mine = net.client.message_types<provider_gateway_actor>();
  for (auto& other : other_versions()) {
    if (!other.other_interface)
      continue;
    INFO("the handle of a gateway " << other.name);
    // Another version's handle (that version's provider's build): CAF
    // compares the interfaces and refuses, naming both.
    auto theirs = other.connect(net.client, port);
    REQUIRE_FALSE(theirs);
    CHECK(theirs.error() == caf::sec::unexpected_actor_messaging_interface);
    // What voicebot-provider compares (the middleman's connect answers the
    // published interface): another version's set is not this one's.
    CHECK(other.message_types(net.client) != mine);
  }
  // Another version's message sent anyway (untyped): answered
  // unexpected_message, never decoded into this version's handler.
  auto gateway = caf::actor_cast<caf::actor>(*same);
  auto unexpected = net.client.render(caf::sec::unexpected_message);
  // The registration from before versions.
  CHECK(net.untyped_answer<registration_result>(gateway, atom::registration_v,
                                                provider_registration{},
                                                bot_host_actor{},
                                                std::vector<bot_run>{})
        == unexpected);
  // Version 1's heartbeat (the id alone).
  CHECK(net.untyped_answer<double>(gateway, atom::heartbeat_v,
                                   std::string{"p-1"})
        == unexpected);
  CHECK(net.log->registrations == 0);
  CHECK(net.log->heartbeat_count() == 0);
}

// -- voicebot-provider's host: versions ---------------------------------------------

TEST_CASE("voicebot-provider gives up with protocol_mismatch at a gateway of "
          "another protocol version, naming both versions where it can",
          "[protocol]") {
  for (auto& other : other_versions()) {
    DYNAMIC_SECTION("a gateway " << other.name) {
      two_nodes net;
      auto reason = net.host_exit(other.publish(net));
      CHECK(code_of(reason) == ec::protocol_mismatch);
      CHECK(contains(net.client.render(reason), other.refusal));
      // It asks which version the gateway speaks; nothing after the refusal.
      CHECK(net.log->hellos == (other.has_hello ? 1 : 0));
      CHECK(net.log->registrations == 0);
    }
  }
}

TEST_CASE("voicebot-provider says hello, then registers with its version at "
          "a gateway of its own version", "[protocol]") {
  two_nodes net;
  host_config hc;
  hc.gateways = {{"127.0.0.1", net.publish_stub()}};
  hc.state_file = net.dir + "/state.json";
  net.start_host(hc);
  CHECK(net.log->wait_registrations(1));
  CHECK(net.log->hellos == 1);
  CHECK(net.log->registrations == 1);
}

// -- voicebot-provider's host: what it reports ------------------------------------

TEST_CASE("voicebot-provider registers with an instance id made once per "
          "process start and its heartbeat period", "[protocol]") {
  two_nodes net;
  auto port = net.publish_stub();
  auto host = net.registered_host(net.config(port));
  // The server forgot it (evicted): it registers again, the same instance.
  net.next_heartbeats();
  net.log->heartbeat_answer = ec::not_found;
  REQUIRE(net.log->wait_registrations(2));
  net.log->heartbeat_answer = ec::none;
  auto regs = net.log->locked([&] { return net.log->regs; });
  REQUIRE(regs.size() >= 2);
  auto instance = regs[0].instance_id;
  CHECK(!instance.empty());
  CHECK(instance.size() <= 64);
  CHECK(regs[1].instance_id == instance);
  CHECK(regs[0].heartbeat_interval == Approx(0.05));
  CHECK(regs[1].provider_id == "p-1"); // the id it got the first time
  // Its heartbeats carry the instance too.
  CHECK(net.next_heartbeats().instance_id == instance);
  // Another start of the program (a new host) is another instance.
  auto again = net.start_host(net.config(port));
  REQUIRE(net.log->wait_registrations(3));
  auto third = net.log->locked([&] { return net.log->regs.back(); });
  CHECK(!third.instance_id.empty());
  CHECK(third.instance_id != instance);
  (void) host;
  (void) again;
}

TEST_CASE("voicebot-provider's heartbeats carry load, capacity and runs; a "
          "run the server stopped is no longer in them", "[protocol]") {
  two_nodes net;
  auto hc = net.config(net.publish_stub());
  hc.max_runs = 4;
  auto host = net.registered_host(hc);
  auto idle = net.next_heartbeats();
  CHECK(idle.has_runs);
  CHECK(idle.runs.empty());
  CHECK(idle.load == 0);
  CHECK(idle.capacity == 4);
  CHECK_FALSE(idle.has_bots);
  auto a = net.join(host, "s-a");
  auto b = net.join(host, "s-b");
  REQUIRE(a);
  REQUIRE(b);
  auto busy = net.next_heartbeats(2);
  CHECK(busy.has_runs);
  CHECK(std::set<std::string>(busy.runs.begin(), busy.runs.end())
        == std::set<std::string>{*a, *b});
  CHECK(busy.load == Approx(0.5));
  CHECK(busy.capacity == 2);
  // The server stops one: the next heartbeats lack it.
  CHECK(net.stop(host, *a));
  auto after = net.next_heartbeats(2);
  CHECK(after.runs == std::vector<std::string>{*b});
  CHECK(after.load == Approx(0.25));
  CHECK(after.capacity == 3);
  // Full: load 1, capacity 0, and a join beyond is refused.
  REQUIRE(net.join(host, "s-c"));
  REQUIRE(net.join(host, "s-d"));
  REQUIRE(net.join(host, "s-e"));
  auto over = net.join(host, "s-f");
  REQUIRE_FALSE(over);
  CHECK(code_of(over.error()) == ec::unavailable);
  auto full = net.next_heartbeats(2);
  CHECK(full.load == 1);
  CHECK(full.capacity == 0);
  CHECK(full.runs.size() == 4);
  // The same membership again is the same run, full or not.
  CHECK(net.join(host, "s-b") == b);
}

// -- voicebot-provider's host: removed and rate_limited ----------------------------

TEST_CASE("voicebot-provider gives up with removed when a heartbeat answers "
          "that it was removed on purpose", "[protocol]") {
  two_nodes net;
  auto host = net.registered_host();
  REQUIRE(net.join(host, "s-a"));
  net.next_heartbeats();
  net.log->heartbeat_answer = ec::removed;
  auto reason = net.wait_exit(host);
  CHECK(code_of(reason) == ec::removed);
  net.check_registrations(1, 0); // it does not come back
}

TEST_CASE("voicebot-provider gives up with removed when its registration "
          "answers that it was removed on purpose", "[protocol]") {
  two_nodes net;
  auto port = net.publish_stub();
  net.log->refusals.push_back(make_error(ec::removed, "Provider was removed"));
  auto reason = net.host_exit(port);
  CHECK(code_of(reason) == ec::removed);
  CHECK(net.log->registrations == 1);
}

TEST_CASE("voicebot-provider registers again after a rate_limited "
          "registration, no sooner than its retry_after", "[protocol]") {
  two_nodes net;
  auto port = net.publish_stub();
  for (int i = 0; i < 2; ++i)
    net.log->refusals.push_back(
      make_error(ec::rate_limited, std::string{"Too many registrations"},
                 0.3));
  auto hc = net.config(port);
  hc.backoff_base = 10ms;
  hc.backoff_max = 20ms;
  net.start_host(hc);
  REQUIRE(net.log->wait_registrations(3));
  auto times = net.log->locked([&] { return net.log->reg_times; });
  REQUIRE(times.size() >= 3);
  for (size_t i = 1; i < 3; ++i) {
    auto gap = times[i] - times[i - 1];
    CHECK(gap >= 300ms);
    CHECK(gap < 2s);
  }
  // Registered now: it heartbeats, on the same connection all along.
  net.next_heartbeats();
  CHECK(net.log->hellos == 1);
}

// -- voicebot-provider's host: the drain of SIGTERM ----------------------------------

TEST_CASE("voicebot-provider drains on SIGTERM: it asks the server with its "
          "drain timeout, keeps its runs and heartbeats, and quits once the "
          "server deregistered it", "[protocol]") {
  two_nodes net;
  auto hc = net.config(net.publish_stub());
  hc.key = "the-key";
  hc.drain_timeout = 30s;
  auto host = net.registered_host(hc);
  auto run = net.join(host, "s-a");
  REQUIRE(run);
  net.start_drain(host);
  auto drain = net.log->locked([&] { return net.log->drains[0]; });
  CHECK(drain.id == "p-1");
  CHECK(drain.key == "the-key");
  CHECK(drain.timeout == Approx(30).margin(1));
  // Draining: its run stays, its heartbeats go on, a new join is refused.
  auto hb = net.next_heartbeats(3);
  CHECK(hb.runs == std::vector<std::string>{*run});
  auto refused = net.join(host, "s-b");
  REQUIRE_FALSE(refused);
  CHECK(code_of(refused.error()) == ec::unavailable);
  // The server deregistered it (its drain ended): the next heartbeat is
  // not_found, and the host quits normally, without registering again.
  net.log->heartbeat_answer = ec::not_found;
  auto reason = net.wait_exit(host);
  CHECK_FALSE(reason);
  net.check_registrations(1, 0);
}

TEST_CASE("voicebot-provider quits normally after a drain that the server "
          "ended with removed", "[protocol]") {
  two_nodes net;
  auto host = net.draining_host();
  net.log->heartbeat_answer = ec::removed;
  CHECK_FALSE(net.wait_exit(host));
}

TEST_CASE("voicebot-provider's drain ends when it runs nothing any more: it "
          "deregisters and quits", "[protocol]") {
  two_nodes net;
  auto host = net.registered_host();
  auto a = net.join(host, "s-a");
  auto b = net.join(host, "s-b");
  REQUIRE(a);
  REQUIRE(b);
  net.start_drain(host);
  // The server moves its members elsewhere and stops the runs here.
  CHECK(net.stop(host, *a));
  CHECK(net.next_heartbeats(2).runs == std::vector<std::string>{*b});
  CHECK(net.stop(host, *b));
  CHECK_FALSE(net.wait_exit(host));
  CHECK(net.log->deregistrations == 1);
}

TEST_CASE("voicebot-provider's drain with no runs deregisters and quits at "
          "once", "[protocol]") {
  two_nodes net;
  auto host = net.registered_host();
  caf::anon_send(host, atom::drain_v);
  // A bound for a loaded machine, not a timing claim: it asks for no drain.
  CHECK_FALSE(net.wait_exit(host, 10s));
  CHECK(net.log->deregistrations == 1);
  CHECK(net.log->drain_count() == 0);
}

TEST_CASE("voicebot-provider drained while its registration is in flight "
          "waits for the answer, deregisters and quits",
          "[protocol]") {
  two_nodes net;
  auto port = net.publish_stub();
  net.log->registration_delay_ms = 500;
  auto host = net.start_host(net.config(port));
  // The server has the registration; the provider has no answer yet.
  REQUIRE(net.log->wait_registrations(1));
  caf::anon_send(host, atom::drain_v);
  CHECK_FALSE(net.wait_exit(host, 10s));
  CHECK(net.log->registrations == 1);
  // The server registered it, so it is told that it left.
  CHECK(net.log->deregistrations == 1);
}

TEST_CASE("voicebot-provider's drain ends when its timeout and grace have "
          "passed: it stops its runs, deregisters and quits", "[protocol]") {
  two_nodes net;
  auto hc = net.config(net.publish_stub());
  hc.drain_timeout = 300ms;
  hc.drain_grace = 200ms;
  auto host = net.registered_host(hc);
  REQUIRE(net.join(host, "s-a"));
  auto started = std::chrono::steady_clock::now();
  caf::anon_send(host, atom::drain_v);
  CHECK_FALSE(net.wait_exit(host, 5s));
  auto took = std::chrono::steady_clock::now() - started;
  CHECK(took >= 500ms);
  CHECK(took < 3s);
  auto drain = net.log->locked([&] { return net.log->drains.at(0); });
  CHECK(drain.timeout == Approx(0.3).margin(0.1));
  CHECK(net.log->deregistrations == 1);
}

TEST_CASE("voicebot-provider stops at once when asked during a drain (a "
          "second SIGTERM): it deregisters and answers", "[protocol]") {
  two_nodes net;
  auto host = net.draining_host();
  caf::scoped_actor self{net.client};
  bool confirmed = false;
  self->request(host, 5s, atom::deregister_v)
    .receive([&](bool ok) { confirmed = ok; }, [](caf::error&) {});
  CHECK(confirmed);
  CHECK(net.log->deregistrations == 1);
}

// -- voicebot-provider's host: several gateways --------------------------------------

namespace {

/// A second server node (another instance in cluster mode) with its own stub
/// gateway; it outlives the `two_nodes` declared after it.
struct other_server {
  net_config cfg;
  caf::actor_system sys{cfg};
  log_ptr log = std::make_shared<seen>();
  caf::actor stub;
  uint16_t port = publish_gateway<provider_gateway_actor>(sys, stub, log,
                                                          protocol_version, 0);

  ~other_server() {
    caf::anon_send_exit(stub, caf::exit_reason::user_shutdown);
  }
};

} // namespace

TEST_CASE("voicebot-provider whose gateway goes away moves to the next "
          "gateway at once and registers there with its id, its instance "
          "and its runs", "[protocol][failover]") {
  other_server b;
  two_nodes net;
  auto hc = net.config(net.publish_stub());
  hc.gateways.push_back({"127.0.0.1", b.port});
  // A backoff this long would fail the test: the move must not wait.
  hc.backoff_base = 10min;
  hc.backoff_max = 10min;
  auto host = net.registered_host(hc);
  auto run = net.join(host, "s-a");
  REQUIRE(run);
  CHECK(b.log->registrations == 0);
  // The first server's gateway dies: the link drops.
  caf::anon_send_exit(net.stub, caf::exit_reason::kill);
  REQUIRE(b.log->wait_registrations(1, 5s));
  auto first = net.log->locked([&] { return net.log->regs.at(0); });
  auto moved = b.log->locked([&] { return b.log->regs.at(0); });
  auto runs = b.log->locked([&] { return b.log->reg_runs.at(0); });
  CHECK(moved.provider_id == "p-1"); // the id the first server gave it
  CHECK(moved.instance_id == first.instance_id);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].run_id == *run);
  CHECK(b.log->hellos == 1);
  // It lives on at the second gateway: heartbeats go there.
  REQUIRE(wait_until([&] { return b.log->heartbeat_count() >= 2; }));
  CHECK(net.log->registrations == 1);
}

TEST_CASE("voicebot-provider whose first gateway refuses connections "
          "registers at the next one without backing off",
          "[protocol][failover]") {
  two_nodes net;
  auto port = net.publish_stub();
  auto hc = net.config(test::refusing_port());
  hc.gateways.push_back({"127.0.0.1", port});
  hc.backoff_base = 10min;
  hc.backoff_max = 10min;
  net.start_host(hc);
  CHECK(net.log->wait_registrations(1, 5s));
  CHECK(net.log->hellos == 1);
}

TEST_CASE("voicebot-provider keeps trying its gateways in rounds, backing "
          "off between rounds, until one of them is up",
          "[protocol][failover]") {
  two_nodes net;
  auto hc = net.config(test::refusing_port());
  hc.gateways.push_back({"127.0.0.1", test::refusing_port()});
  hc.backoff_base = 50ms;
  hc.backoff_max = 50ms;
  net.start_host(hc);
  // Both refuse: it goes round and round (nothing to wait for but time).
  std::this_thread::sleep_for(300ms);
  // Then the second one comes up, and it registers there.
  net.publish_stub(protocol_version, hc.gateways[1].port);
  CHECK(net.log->wait_registrations(1, 5s));
}
