// The CAF provider protocol on its own: built with VB_WIRE_ONLY (through
// vb_provider), so nothing here can reach the server's local vocabulary.
// Pins what protocol version 1 puts on the wire, checks CAF's interface check
// between versions over a real loopback connection (two actor systems in one
// process, each with its own middleman), and that voicebot-provider's host
// gives up with protocol_mismatch at a server of another version.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "protocol/protocol.hpp"
#include "provider/host.hpp"
#include "wire_pins.hpp"

using namespace vb;
using namespace std::chrono_literals;

namespace {

// -- other versions of the gateway ---------------------------------------------

/// The gateway before protocol versions (voicebot-server until protocol
/// version 1): no hello, a registration without a version.
using v0_gateway_actor = caf::typed_actor<
  caf::replies_to<atom::registration, provider_registration, bot_host_actor,
                  std::vector<bot_run>>::with<registration_result>,
  caf::replies_to<atom::heartbeat, std::string>::with<double>,
  caf::replies_to<atom::deregister, std::string, std::string>::with<bool>,
  caf::reacts_to<atom::say, std::string, std::string, std::string>>;

/// A later version's gateway: hello as in every version, and a message this
/// version does not have.
using v2_gateway_actor = provider_gateway_actor::extend<
  caf::replies_to<atom::heartbeat, std::string, double>::with<double>>;

/// What a stub gateway was sent (it runs on the server node's threads).
struct seen {
  std::atomic<int> hellos{0};
  std::atomic<int> registrations{0};
};

caf::error refusal(uint32_t theirs, uint32_t speaks) {
  return make_error(ec::protocol_mismatch,
                    "the provider speaks CAF provider protocol version "
                      + std::to_string(theirs) + ", this server speaks version "
                      + std::to_string(speaks));
}

/// A gateway of this interface that speaks protocol version `speaks`.
provider_gateway_actor::behavior_type
gateway_stub(provider_gateway_actor::pointer self, uint32_t speaks,
             std::shared_ptr<seen> log) {
  return {
    [=](atom::hello, uint32_t v) -> caf::result<uint32_t> {
      ++log->hellos;
      if (v != speaks)
        return refusal(v, speaks);
      return speaks;
    },
    [=](atom::registration, uint32_t v, const provider_registration&,
        const bot_host_actor&,
        const std::vector<bot_run>&) -> caf::result<registration_result> {
      ++log->registrations;
      if (v != speaks)
        return refusal(v, speaks);
      return registration_result{"p-1", {}};
    },
    [=](atom::heartbeat, const std::string&) { return 1.0; },
    [=](atom::deregister, const std::string&, const std::string&) {
      return true;
    },
    [=](atom::say, const std::string&, const std::string&,
        const std::string&) {},
  };
}

v0_gateway_actor::behavior_type v0_gateway_stub(v0_gateway_actor::pointer self,
                                                std::shared_ptr<seen> log) {
  return {
    [=](atom::registration, const provider_registration&,
        const bot_host_actor&, const std::vector<bot_run>&) {
      ++log->registrations;
      return registration_result{"p-0", {}};
    },
    [=](atom::heartbeat, const std::string&) { return 1.0; },
    [=](atom::deregister, const std::string&, const std::string&) {
      return true;
    },
    [=](atom::say, const std::string&, const std::string&,
        const std::string&) {},
  };
}

v2_gateway_actor::behavior_type v2_gateway_stub(v2_gateway_actor::pointer self,
                                                std::shared_ptr<seen> log) {
  return {
    [=](atom::hello, uint32_t v) -> caf::result<uint32_t> {
      ++log->hellos;
      if (v != 2)
        return refusal(v, 2);
      return uint32_t{2};
    },
    [=](atom::registration, uint32_t v, const provider_registration&,
        const bot_host_actor&,
        const std::vector<bot_run>&) -> caf::result<registration_result> {
      ++log->registrations;
      if (v != 2)
        return refusal(v, 2);
      return registration_result{"p-2", {}};
    },
    [=](atom::heartbeat, const std::string&) { return 1.0; },
    [=](atom::heartbeat, const std::string&, double) { return 1.0; },
    [=](atom::deregister, const std::string&, const std::string&) {
      return true;
    },
    [=](atom::say, const std::string&, const std::string&,
        const std::string&) {},
  };
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
  std::shared_ptr<seen> log = std::make_shared<seen>();
  caf::actor stub;
  std::string dir;

  two_nodes() {
    char tmpl[] = "/tmp/vb-protocol-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }

  ~two_nodes() {
    if (stub)
      caf::anon_send_exit(stub, caf::exit_reason::user_shutdown);
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  template <class Handle>
  uint16_t publish(Handle h) {
    stub = caf::actor_cast<caf::actor>(h);
    auto port = caf::io::publish(h, 0, "127.0.0.1", true);
    REQUIRE(port);
    return *port;
  }

  /// Runs voicebot-provider's host against the port until it stops (or
  /// fails the test after `limit`); returns why it stopped.
  caf::error host_exit(uint16_t port, caf::timespan limit = 10s) {
    host_config hc;
    hc.server_port = port;
    hc.state_file = dir + "/state.json";
    hc.call_timeout = 3s;
    hc.backoff_max = 100ms;
    auto host = client.spawn(provider_host, hc);
    caf::scoped_actor self{client};
    self->monitor(host);
    caf::error reason;
    bool stopped = false;
    self->receive([&](caf::down_msg& msg) {
      reason = msg.reason;
      stopped = true;
    },
                  caf::after(limit) >> [] {});
    if (!stopped) {
      caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
      FAIL("the provider's host did not stop");
    }
    return reason;
  }
};

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

TEST_CASE("protocol version 1's interfaces and field layouts are pinned: "
          "changing them needs a new version", "[protocol]") {
  // Bumping the version is the moment to update every pin below.
  REQUIRE(protocol_version == 1);
  net_config cfg;
  caf::actor_system sys{cfg};
  CHECK(sys.message_types<provider_gateway_actor>()
        == std::set<std::string>{
          "caf::replies_to<deregistr,@str,@str>::with<bool>",
          "caf::replies_to<heartbeat,@str>::with<double>",
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
  // one byte; doubles big-endian IEEE 754).
  CHECK(wire_bytes(sys, provider_registration{"n", "u", "d", "k", "p",
                                              {bot_info{"b", "x"}},
                                              transport::caf})
        == "016e01750164016b0170010162017801");
  CHECK(wire_bytes(sys, dispatch_request{"b", "l", "s", "n"})
        == "0162016c0173016e");
  CHECK(wire_bytes(sys, bot_run{"r", "b", "l", "s", "n"})
        == "01720162016c0173016e");
  CHECK(wire_bytes(sys, registration_result{"p", {"r1", "r2"}})
        == "017002027231027232");
  session member{"s", "n", true, "b", "p", "r", 1.5};
  CHECK(wire_bytes(sys, lobby_event{"chat", "l", member, "t", 2.5})
        == "0463686174016c0173016e010162017001723ff800000000000001744004000000"
           "000000");
  // The error codes a provider may see keep their values.
  CHECK(static_cast<int>(ec::not_found) == 1);
  CHECK(static_cast<int>(ec::key_missing) == 2);
  CHECK(static_cast<int>(ec::key_invalid) == 3);
  CHECK(static_cast<int>(ec::storage_failed) == 4);
  CHECK(static_cast<int>(ec::unavailable) == 5);
  CHECK(static_cast<int>(ec::rejected) == 6);
  CHECK(static_cast<int>(ec::invalid) == 7);
  CHECK(static_cast<int>(ec::protocol_mismatch) == 8);
}

// -- CAF's interface check ------------------------------------------------------------

TEST_CASE("a provider built against another interface is refused when it "
          "connects, before it sends anything", "[protocol]") {
  two_nodes net;
  auto port = net.publish(net.server.spawn(gateway_stub, protocol_version,
                                           net.log));
  // This version's handle: accepted.
  auto same = caf::io::remote_actor<provider_gateway_actor>(net.client,
                                                             "127.0.0.1", port);
  REQUIRE(same);
  // The handle of the gateway before versions (an old provider's build):
  // CAF compares the interfaces and refuses, naming both.
  auto old = caf::io::remote_actor<v0_gateway_actor>(net.client, "127.0.0.1",
                                                     port);
  REQUIRE_FALSE(old);
  CHECK(old.error() == caf::sec::unexpected_actor_messaging_interface);
  // A later version's handle too.
  auto later = caf::io::remote_actor<v2_gateway_actor>(net.client,
                                                       "127.0.0.1", port);
  REQUIRE_FALSE(later);
  CHECK(later.error() == caf::sec::unexpected_actor_messaging_interface);
  // What voicebot-provider compares (the middleman's connect answers the
  // published interface): another version's set is not this one's.
  CHECK(net.client.message_types<v0_gateway_actor>()
        != net.client.message_types<provider_gateway_actor>());
  // An old registration sent anyway (untyped): answered unexpected_message,
  // never decoded into this version's handler.
  caf::scoped_actor self{net.client};
  std::string outcome;
  self
    ->request(caf::actor_cast<caf::actor>(*same), 5s, atom::registration_v,
              provider_registration{}, bot_host_actor{},
              std::vector<bot_run>{})
    .receive([&](registration_result&) { outcome = "registered"; },
             [&](caf::error& err) { outcome = net.client.render(err); });
  CHECK(outcome == net.client.render(caf::sec::unexpected_message));
  CHECK(net.log->registrations == 0);
}

// -- voicebot-provider's host -------------------------------------------------------

TEST_CASE("voicebot-provider gives up with protocol_mismatch when a gateway "
          "of its interface refuses its version at hello", "[protocol]") {
  two_nodes net;
  auto port = net.publish(net.server.spawn(gateway_stub, uint32_t{2},
                                           net.log));
  auto reason = net.host_exit(port);
  CHECK(code_of(reason) == ec::protocol_mismatch);
  auto text = net.client.render(reason);
  CHECK(contains(text, "protocol version 1, this server speaks version 2"));
  CHECK(net.log->hellos == 1);
  CHECK(net.log->registrations == 0); // nothing sent after the refusal
}

TEST_CASE("voicebot-provider gives up with protocol_mismatch at a gateway of "
          "another interface, naming its version", "[protocol]") {
  two_nodes net;
  auto port = net.publish(net.server.spawn(v2_gateway_stub, net.log));
  auto reason = net.host_exit(port);
  CHECK(code_of(reason) == ec::protocol_mismatch);
  CHECK(contains(net.client.render(reason),
                 "protocol version 1, this server speaks version 2"));
  CHECK(net.log->registrations == 0);
}

TEST_CASE("voicebot-provider gives up with protocol_mismatch at a gateway "
          "from before protocol versions", "[protocol]") {
  two_nodes net;
  auto port = net.publish(net.server.spawn(v0_gateway_stub, net.log));
  auto reason = net.host_exit(port);
  CHECK(code_of(reason) == ec::protocol_mismatch);
  CHECK(contains(net.client.render(reason), "does not answer hello"));
  CHECK(net.log->registrations == 0);
}

TEST_CASE("voicebot-provider says hello, then registers with its version at "
          "a gateway of its own version", "[protocol]") {
  two_nodes net;
  auto port = net.publish(net.server.spawn(gateway_stub, protocol_version,
                                           net.log));
  host_config hc;
  hc.server_port = port;
  hc.state_file = net.dir + "/state.json";
  auto host = net.client.spawn(provider_host, hc);
  for (int i = 0; i < 200 && net.log->registrations == 0; ++i)
    std::this_thread::sleep_for(10ms);
  CHECK(net.log->hellos == 1);
  CHECK(net.log->registrations == 1);
  caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
}
