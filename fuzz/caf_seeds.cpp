// Writes the seed corpus of the caf_messages target (fuzz/corpus/
// caf_messages/): CAF's own encoding of every wire type and of the messages
// a provider sends the gateway, so that the fuzzer starts from valid BASP
// payloads instead of guessing CAF's format. Built on demand:
//   cmake --build build --target fuzz_caf_seeds
//   build/fuzz/fuzz_caf_seeds fuzz/corpus/caf_messages
#include <cstdio>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"
#include "actors/messages.hpp"
#include "protocol/protocol.hpp"
#include "tests/model_samples.hpp"

namespace {

caf::actor_system* sys = nullptr;
std::string dir;

template <class... Ts>
void seed(const std::string& name, const Ts&... xs) {
  std::vector<char> buf;
  caf::binary_serializer sink{*sys, buf};
  if (auto err = sink(const_cast<Ts&>(xs)...)) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), sys->render(err).c_str());
    return;
  }
  auto path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(buf.data(), 1, buf.size(), f) != buf.size()) {
    std::perror(path.c_str());
    return;
  }
  std::fclose(f);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  caf::actor_system_config cfg;
  vb::add_message_types(cfg);
  caf::actor_system system{cfg};
  sys = &system;
  using namespace vb;

  bot_info bot{"echo", "Repeats what it hears"};
  provider_registration reg;
  reg.name = "voicebot";
  reg.description = "CAF provider";
  reg.provider_key = "k1";
  reg.bots = {bot, bot_info{"greeter", ""}};
  reg.via = transport::caf;
  reg.instance_id = "i-1";
  reg.heartbeat_interval = 5;
  heartbeat hb;
  hb.has_bots = true;
  hb.bots = {bot};
  hb.instance_id = "i-1";
  hb.load = 0.5;
  hb.capacity = 8;
  hb.has_runs = true;
  hb.runs = {"r1", "r2"};
  auto s = test::bot_member("s-1", "echo-bot", "echo", "p-1", "r1",
                            1757000002.75);
  std::vector<bot_run> runs{bot_run{"r1", "echo", "lobby-1", "s-1", "Echo"}};
  bot_host_actor no_host;

  seed("bot_info", bot);
  seed("registration", reg);
  seed("heartbeat", hb);
  seed("session", s);
  seed("dispatch_request", dispatch_request{"echo", "lobby-1", "s-1", "Echo", ""});
  seed("bot_runs", runs);
  seed("registration_result", registration_result{"p-1", {"r9"}});
  seed("lobby_event", lobby_event{lobby_event_type::chat, "lobby-1", s, "hello", 17.5});
  seed("host_handle_null", no_host);
  seed("args_hello", atom::hello_v, protocol_version);
  seed("args_registration", atom::registration_v, protocol_version, reg,
       no_host, runs);
  seed("args_heartbeat", atom::heartbeat_v, std::string{"p-1"}, hb);
  seed("args_drain", atom::drain_v, std::string{"p-1"}, std::string{"k1"},
       30.0);
  seed("args_deregister", atom::deregister_v, std::string{"p-1"},
       std::string{"k1"});
  seed("args_say", atom::say_v, std::string{"lobby-1"}, std::string{"s-1"},
       std::string{"hi"});
  seed("error_rate_limited",
       make_error(ec::rate_limited, std::string{"too many"}, 1.25));
  seed("error_unavailable", make_error(ec::unavailable));
  seed("message_hello", caf::make_message(atom::hello_v, protocol_version));
  seed("message_registration",
       caf::make_message(atom::registration_v, protocol_version, reg, no_host,
                         runs));
  seed("message_heartbeat",
       caf::make_message(atom::heartbeat_v, std::string{"p-1"}, hb));
  seed("message_drain", caf::make_message(atom::drain_v, std::string{"p-1"},
                                          std::string{"k1"}, -1.0));
  seed("message_say",
       caf::make_message(atom::say_v, std::string{"lobby-1"},
                         std::string{"s-1"}, std::string{"hi"}));
  seed("message_local_provider", caf::make_message(provider{}));
  seed("message_empty", caf::message{});
  std::printf("seeds written to %s\n", dir.c_str());
  return 0;
}
