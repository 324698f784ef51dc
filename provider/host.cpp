#include "provider/host.hpp"

#include <algorithm>
#include <filesystem>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "model/ids.hpp"
#include "provider/voice/engine.hpp"
#include "storage/snapshot_file.hpp"

namespace vb {

const std::vector<std::string>& known_bots() {
  static const std::vector<std::string> bots{"echo", "greeter", "listener"};
  return bots;
}

namespace {

std::string bot_description(const std::string& bot) {
  if (bot == "echo")
    return "Repeats what people say in the lobby";
  if (bot == "greeter")
    return "Says hello to everyone who joins the lobby";
  if (bot == "listener")
    return "Writes what people say in the lobby as chat lines";
  return {};
}

// -- bots ---------------------------------------------------------------------

/// One bot in one lobby: reacts to the lobby's events.
caf::behavior bot_fn(caf::event_based_actor* self, host_actor host,
                     bot_run run) {
  auto say = [=](std::string text) {
    self->send(host, atom::say_v, run.lobby_id, run.session_id,
               std::move(text));
  };
  return {
    [=](atom::event, const lobby_event& ev) {
      if (ev.member.session_id == run.session_id)
        return; // its own doing
      if (run.bot_name == "echo" && ev.type == lobby_event_type::chat && !ev.member.is_bot)
        say(ev.text);
      else if (run.bot_name == "greeter" && ev.type == lobby_event_type::member_joined)
        say("Hello, " + ev.member.nick + "!");
    },
  };
}

std::pair<std::string, std::string> split_path(const std::string& path) {
  std::filesystem::path p{path};
  auto dir = p.parent_path().string();
  return {dir.empty() ? std::string{"."} : dir, p.filename().string()};
}

} // namespace

// -- state file -----------------------------------------------------------------

void host_state::load_state() {
  auto [dir, file] = split_path(config.state_file);
  storage::snapshot_file f{dir, file};
  auto res = f.load([](const std::string& text, std::string& why) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("provider_id")
        || !j["provider_id"].is_string()) {
      why = "not a provider state file";
      return false;
    }
    return true;
  });
  if (res.source == storage::load_source::none)
    return;
  provider_id = nlohmann::json::parse(res.contents)["provider_id"];
  spdlog::info("provider id {} from {}", provider_id, config.state_file);
}

void host_state::save_state() {
  auto [dir, file] = split_path(config.state_file);
  storage::snapshot_file f{dir, file};
  std::string error;
  nlohmann::json j{{"provider_id", provider_id}};
  if (!f.write(j.dump() + "\n", error))
    spdlog::error("cannot write {}: {}", config.state_file, error);
}

// -- connection -------------------------------------------------------------------

const gateway_address& host_state::where() const {
  return config.gateways[current % config.gateways.size()];
}

void host_state::connect() {
  if (connecting || gateway || leaving)
    return;
  connecting = true;
  auto target = where();
  // With --tls-cert/--tls-key/--tls-ca the connector runs mutual TLS; a
  // failed handshake is an error here, retried with backoff.
  auto mm = config.connector ? config.connector
                             : self->home_system().middleman().actor_handle();
  self->request(mm, config.call_timeout, caf::connect_atom_v, target.host,
                target.port)
    .then(
      [this, target](const caf::node_id&, caf::strong_actor_ptr& ptr,
                     const std::set<std::string>& ifs) {
        if (!ptr) {
          connecting = false;
          spdlog::warn("nothing is published at {}", to_string(target));
          connect_failed();
          return;
        }
        // CAF's interface check: the gateway's signature (atoms, type
        // names, arguments) must be this protocol version's, or nothing is
        // sent that the other end could decode differently.
        if (ifs != self->home_system().message_types<provider_gateway_actor>()) {
          interface_differs(std::move(ptr), ifs);
          return;
        }
        gateway = caf::actor_cast<provider_gateway_actor>(std::move(ptr));
        self->monitor(gateway);
        ++connection;
        spdlog::info("connected to gateway {} ({} of {})", to_string(target),
                     current % config.gateways.size() + 1,
                     config.gateways.size());
        say_hello();
      },
      [this, target](caf::error& err) {
        connecting = false;
        spdlog::debug("cannot reach {}: {}", to_string(target),
                      caf::to_string(err));
        connect_failed();
      });
}

void host_state::connect_failed() {
  // Round robin: the next gateway at once, until every one of them failed
  // in this round; then the usual jittered backoff before the next round
  // (one gateway: every failure is a round, as before there were several).
  if (leaving)
    return;
  current = (current + 1) % config.gateways.size();
  if (++tried < config.gateways.size()) {
    spdlog::debug("trying the next gateway, {}", to_string(where()));
    self->send(self, provider_atom::connect::value);
    return;
  }
  tried = 0;
  reconnect_later();
}

caf::timespan host_state::backoff_delay() {
  // Full jitter: a uniform delay in [0, min(max, base * 2^attempt)].
  auto cap = config.backoff_base * (int64_t{1} << std::min<uint32_t>(attempt, 20));
  cap = std::min<caf::timespan>(cap, config.backoff_max);
  std::uniform_int_distribution<int64_t> pick{0, cap.count()};
  ++attempt;
  return caf::timespan{pick(rng)};
}

void host_state::reconnect_later() {
  if (leaving)
    return;
  auto delay = backoff_delay();
  if (attempt == 1 || attempt % 10 == 0) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(delay)
                .count();
    if (config.gateways.size() == 1)
      spdlog::info("server {} not reachable; trying again (attempt {}, next "
                   "in {} ms)",
                   to_string(where()), attempt, ms);
    else
      spdlog::info("no gateway reachable of {}; trying again (round {}, "
                   "{} next in {} ms)",
                   to_string(config.gateways), attempt, to_string(where()),
                   ms);
  }
  self->delayed_send(self, delay, provider_atom::connect::value);
}

void host_state::say_hello() {
  auto conn = connection;
  self
    ->request(gateway, config.call_timeout, atom::hello_v,
              config.protocol_version)
    .then(
      [this, conn](uint32_t) {
        if (conn == connection)
          register_now();
      },
      [this, conn](caf::error& err) {
        if (conn != connection)
          return;
        if (code_of(err) == ec::protocol_mismatch) {
          spdlog::error("protocol mismatch, refused by the server at {}: {}",
                        to_string(where()), self->home_system().render(err));
          give_up(err);
          return;
        }
        spdlog::warn("hello failed: {}", self->home_system().render(err));
        connecting = false;
        drop_gateway();
        connect_failed();
      });
}

void host_state::interface_differs(caf::strong_actor_ptr ptr,
                                   const std::set<std::string>& ifs) {
  auto expected = self->home_system().message_types<provider_gateway_actor>();
  for (auto& x : ifs)
    if (expected.count(x) == 0)
      spdlog::debug("the server's gateway has {}", x);
  for (auto& x : expected)
    if (ifs.count(x) == 0)
      spdlog::debug("the server's gateway lacks {}", x);
  // `hello` is the same in every protocol version: ask which one it speaks,
  // so that the refusal names both versions.
  auto peer = caf::actor_cast<caf::actor>(std::move(ptr));
  auto where = to_string(this->where()); // the gateway that differs
  auto mine = std::to_string(config.protocol_version);
  auto refused = [this, where](caf::error err) {
    spdlog::error("protocol mismatch with {}, not retrying: {}", where,
                  self->home_system().render(err));
    give_up(err);
  };
  self->request(peer, config.call_timeout, atom::hello_v,
                config.protocol_version)
    .then(
      [=](uint32_t theirs) {
        refused(make_error(
          ec::protocol_mismatch,
          where + " speaks CAF provider protocol version "
            + std::to_string(theirs) + " with another interface than "
            + "this provider's version " + mine
            + " (a build that changed the protocol without a new version)"));
      },
      [=](caf::error& err) {
        if (code_of(err) == ec::protocol_mismatch) {
          refused(err);
          return;
        }
        refused(make_error(
          ec::protocol_mismatch,
          where + " is not a provider gateway of CAF provider protocol "
            + "version " + mine + ": its interface differs and it does not "
            + "answer hello (a voicebot-server from before protocol "
            + "versions, or another program)"));
      });
}

void host_state::register_now() {
  provider_registration reg;
  reg.name = config.name;
  reg.description = config.description;
  reg.provider_key = config.key;
  reg.provider_id = provider_id;
  reg.via = transport::caf;
  reg.instance_id = instance_id;
  reg.heartbeat_interval
    = std::chrono::duration<double>(config.heartbeat_interval).count();
  for (auto& b : config.bots)
    reg.bots.push_back(bot_info{b, bot_description(b)});
  auto conn = connection;
  registering = true;
  self
    ->request(gateway, config.call_timeout, atom::registration_v,
              config.protocol_version, reg,
              caf::actor_cast<bot_host_actor>(self), run_list())
    .then(
      [this, conn](registration_result& res) {
        if (conn != connection)
          return;
        registering = false;
        if (deregister_when_registered) {
          // It left meanwhile: the server knows it now, so it is told.
          registered = true;
          provider_id = res.provider_id;
          save_state();
          deregister_and_quit();
          return;
        }
        if (leaving)
          return;
        connecting = false;
        registered = true;
        attempt = 0;
        tried = 0;
        if (res.provider_id != provider_id) {
          provider_id = res.provider_id;
          save_state();
        }
        spdlog::info("registered as {} with {} runs (instance {}) at {}",
                     provider_id, runs.size(), instance_id,
                     to_string(where()));
        for (auto& run_id : res.unknown_runs)
          stop_run(run_id, "unknown to the server");
        if (leaving)
          return; // draining, and that was its last run
        self->delayed_send(self, config.heartbeat_interval,
                           provider_atom::tick::value, conn);
        // A registration may have made it online again: drain on.
        if (draining)
          ask_drain();
      },
      [this, conn](caf::error& err) {
        if (conn != connection)
          return;
        registering = false;
        if (deregister_when_registered) {
          self->quit(); // the server does not know it: nothing to undo
          return;
        }
        if (leaving)
          return;
        connecting = false;
        registration_failed(err);
      });
}

void host_state::registration_failed(const caf::error& err) {
  auto& sys = self->home_system();
  switch (code_of(err)) {
    case ec::key_missing:
    case ec::key_invalid:
    case ec::invalid:
    case ec::protocol_mismatch:
      // Retrying cannot help: the configuration is wrong.
      spdlog::error("registration refused: {}", sys.render(err));
      give_up(err);
      return;
    case ec::removed:
      if (draining) {
        leave("the server removed it while it drained", false);
        return;
      }
      spdlog::error("registration refused: the server removed provider {} "
                    "(instance {}) on purpose, so it does not come back: {}",
                    provider_id, instance_id, sys.render(err));
      give_up(err);
      return;
    case ec::rate_limited: {
      // Too many registrations at the server: wait as long as it says, plus
      // the jitter of the usual backoff so that a herd spreads out.
      double retry_after = 1;
      auto& ctx = err.context();
      if (ctx.match_elements<std::string, double>())
        retry_after = ctx.get_as<double>(1);
      if (!(retry_after >= 0) || retry_after > 3600)
        retry_after = 1;
      auto delay = std::chrono::duration_cast<caf::timespan>(
                     std::chrono::duration<double>(retry_after))
                   + backoff_delay();
      spdlog::warn("registration rate-limited by the server; trying again "
                   "in {} ms (Retry-After {} s)",
                   std::chrono::duration_cast<std::chrono::milliseconds>(delay)
                     .count(),
                   retry_after);
      connecting = true; // still on this connection: no new connect
      self->delayed_send(self, delay, provider_atom::retry::value,
                         connection);
      return;
    }
    default:
      spdlog::warn("registration failed: {}", sys.render(err));
      drop_gateway();
      connect_failed();
  }
}

void host_state::drop_gateway() {
  if (gateway) {
    self->demonitor(gateway.address());
    gateway = nullptr;
  }
  registered = false;
  registering = false;
}

void host_state::give_up(const caf::error& reason) {
  leaving = true;
  stop_runs("giving up");
  self->quit(reason);
}

void host_state::link_lost(const caf::error& reason) {
  if (leaving)
    return; // its last deregistration fails and it quits
  gateway = nullptr;
  registered = false;
  registering = false; // its answer, if any, is for the old connection
  connecting = false;
  ++connection;
  tried = 0;
  if (config.gateways.size() == 1) {
    spdlog::warn("link to the server lost ({}); reconnecting",
                 caf::to_string(reason));
    reconnect_later();
    return;
  }
  // Another gateway may well be up: the first attempt there is immediate;
  // a full round of failures then backs off (connect_failed).
  auto lost = where();
  current = (current + 1) % config.gateways.size();
  spdlog::warn("link to the server at {} lost ({}); moving to gateway {}",
               to_string(lost), caf::to_string(reason), to_string(where()));
  self->send(self, provider_atom::connect::value);
}

// -- heartbeats -------------------------------------------------------------------

heartbeat host_state::report() const {
  heartbeat hb;
  hb.instance_id = instance_id;
  auto n = static_cast<uint64_t>(runs.size());
  auto max = std::max<uint64_t>(config.max_runs, 1);
  hb.load = std::min(1.0, static_cast<double>(n) / static_cast<double>(max));
  hb.capacity = n >= config.max_runs
                  ? 0
                  : static_cast<int64_t>(config.max_runs - n);
  hb.has_runs = true;
  hb.runs.reserve(runs.size());
  for (auto& [id, r] : runs)
    hb.runs.push_back(id);
  return hb;
}

void host_state::heartbeat_now(uint64_t conn) {
  if (conn != connection || !gateway || !registered || leaving)
    return;
  self
    ->request(gateway, config.call_timeout, atom::heartbeat_v, provider_id,
              report())
    .then(
      [this, conn](double) {
        if (conn == connection && !leaving)
          self->delayed_send(self, config.heartbeat_interval,
                             provider_atom::tick::value, conn);
      },
      [this, conn](caf::error& err) { heartbeat_failed(conn, err); });
}

void host_state::heartbeat_failed(uint64_t conn, const caf::error& err) {
  if (conn != connection || !gateway || leaving)
    return;
  auto code = code_of(err);
  if (draining && (code == ec::not_found || code == ec::removed)) {
    // The end of a drain: the server deregistered it.
    leave("the server deregistered it", false);
    return;
  }
  if (code == ec::removed) {
    spdlog::error("the server removed provider {} (instance {}) on purpose; "
                  "not coming back: {}",
                  provider_id, instance_id, self->home_system().render(err));
    give_up(err);
    return;
  }
  if (code == ec::not_found) {
    // Evicted or deleted while we were away: register again with the same
    // id.
    spdlog::warn("the server does not know {}; registering again",
                 provider_id);
    registered = false;
    register_now();
    return;
  }
  if (code == ec::invalid)
    spdlog::warn("heartbeat refused: {}", self->home_system().render(err));
  self->delayed_send(self, config.heartbeat_interval,
                     provider_atom::tick::value, conn);
}

// -- drain and stop -----------------------------------------------------------------

void host_state::start_drain() {
  if (draining || leaving)
    return;
  draining = true;
  drain_deadline = std::chrono::steady_clock::now() + config.drain_timeout;
  if (runs.empty()) {
    leave("draining, and it runs nothing", true);
    return;
  }
  spdlog::info("draining: no new joins; its {} runs stay for up to {} s",
               runs.size(),
               std::chrono::duration<double>(config.drain_timeout).count());
  self->delayed_send(self, config.drain_timeout + config.drain_grace,
                     provider_atom::drain_end::value);
  if (gateway && registered)
    ask_drain();
  // Otherwise it asks once it is registered again.
}

void host_state::ask_drain() {
  auto left = std::chrono::duration<double>(drain_deadline
                                            - std::chrono::steady_clock::now())
                .count();
  if (left <= 0)
    return; // timed out already: it leaves at the end of the grace
  auto conn = connection;
  self
    ->request(gateway, config.call_timeout, atom::drain_v, provider_id,
              config.key, left)
    .then(
      [this, left](bool) {
        spdlog::info("the server drains {} (timeout {:.1f} s)", provider_id,
                     left);
      },
      [this, conn](caf::error& err) {
        if (conn != connection || leaving)
          return;
        auto code = code_of(err);
        if (code == ec::not_found || code == ec::removed) {
          leave("the server does not know it any more", false);
          return;
        }
        // It drains on its own all the same: no new joins, and it leaves
        // when it runs nothing or the timeout passes.
        spdlog::warn("drain refused: {}", self->home_system().render(err));
      });
}

void host_state::stop_runs(const char* why) {
  std::vector<std::string> ids;
  for (auto& [id, r] : runs)
    ids.push_back(id);
  for (auto& id : ids)
    stop_run(id, why);
}

void host_state::leave(const std::string& why, bool deregister) {
  if (leaving)
    return;
  leaving = true;
  spdlog::info("leaving: {}", why);
  stop_runs("shutting down");
  if (deregister && gateway && !registered && registering) {
    // Its registration is on the way: the server may register it, so it
    // waits for the answer (call_timeout at most) and deregisters then.
    deregister_when_registered = true;
    return;
  }
  if (!deregister || !gateway || !registered || provider_id.empty()) {
    self->quit();
    return;
  }
  deregister_and_quit();
}

void host_state::deregister_and_quit() {
  self
    ->request(gateway, config.stop_timeout, atom::deregister_v, provider_id,
              config.key)
    .then(
      [this](bool) {
        spdlog::info("deregistered {}", provider_id);
        self->quit();
      },
      [this](caf::error& err) {
        spdlog::warn("deregistration failed: {}",
                     self->home_system().render(err));
        self->quit();
      });
}

// -- runs ---------------------------------------------------------------------------

std::vector<bot_run> host_state::run_list() const {
  std::vector<bot_run> result;
  result.reserve(runs.size());
  for (auto& [id, r] : runs)
    result.push_back(r.value);
  return result;
}

caf::expected<std::string> host_state::start_run(const dispatch_request& req) {
  if (std::find(config.bots.begin(), config.bots.end(), req.bot_name)
      == config.bots.end())
    return make_error(ec::not_found, "no bot " + req.bot_name + " here");
  // The same membership again (a retried dispatch) is the same run.
  for (auto& [id, r] : runs)
    if (r.value.lobby_id == req.lobby_id
        && r.value.session_id == req.session_id)
      return id;
  if (leaving)
    return make_error(ec::unavailable, "shutting down");
  if (draining)
    return make_error(ec::unavailable, "draining");
  if (runs.size() >= config.max_runs)
    return make_error(ec::unavailable,
                      "at capacity (" + std::to_string(config.max_runs)
                        + " runs)");
  bot_run run{new_uuid(rng), req.bot_name, req.lobby_id, req.session_id,
              req.nick};
  auto host = caf::actor_cast<host_actor>(self);
  auto actor = self->home_system().spawn(bot_fn, host, run);
  spdlog::info("run {} started: {} in lobby {} as '{}'", run.run_id,
               run.bot_name, run.lobby_id, run.nick);
  auto id = run.run_id;
  if (config.voice && !req.session_token.empty() && !req.server_url.empty())
    config.voice->start({id, req.bot_name, req.lobby_id, req.session_id,
                         req.nick, req.session_token, req.server_url});
  runs.emplace(id, run_entry{std::move(run), std::move(actor)});
  return id;
}

bool host_state::stop_run(const std::string& run_id, const char* why) {
  auto i = runs.find(run_id);
  if (i == runs.end())
    return false;
  self->send_exit(i->second.actor, caf::exit_reason::user_shutdown);
  if (config.voice)
    config.voice->stop(run_id);
  spdlog::info("run {} stopped: {}", run_id, why);
  runs.erase(i);
  if (draining && runs.empty())
    leave("drained: it runs nothing any more", true);
  return true;
}

// -- behavior -------------------------------------------------------------------------

host_actor::behavior_type
provider_host(host_actor::stateful_pointer<host_state> self,
              host_config config) {
  auto& st = self->state;
  st.self = self;
  st.config = std::move(config);
  if (st.config.gateways.empty())
    st.config.gateways.push_back(gateway_address{"127.0.0.1", 8001});
  st.instance_id = new_uuid(st.rng);
  st.load_state();
  self->set_down_handler([self](const caf::down_msg& msg) {
    auto& st = self->state;
    if (st.gateway && msg.source == st.gateway.address())
      st.link_lost(msg.reason);
  });
  self->send(self, provider_atom::connect::value);
  return {
    [=](atom::join, const dispatch_request& req) -> caf::result<std::string> {
      auto res = self->state.start_run(req);
      if (!res)
        return std::move(res.error());
      return *res;
    },
    [=](atom::stop, const std::string& run_id) {
      return self->state.stop_run(run_id, "the server asked");
    },
    [=](atom::event, const std::string& run_id, const lobby_event& ev) {
      auto& runs = self->state.runs;
      if (auto i = runs.find(run_id); i != runs.end())
        caf::anon_send(i->second.actor, atom::event_v, ev);
    },
    [=](provider_atom::connect) { self->state.connect(); },
    [=](provider_atom::tick, uint64_t conn) {
      self->state.heartbeat_now(conn);
    },
    [=](provider_atom::retry, uint64_t conn) {
      auto& st = self->state;
      if (conn == st.connection && st.gateway && !st.registered
          && !st.leaving)
        st.register_now();
    },
    [=](provider_atom::drain_end) {
      self->state.leave("the drain timed out", true);
    },
    [=](provider_atom::fenced, const std::string& run_id, const std::string& why) {
      self->state.stop_run(run_id, why.c_str());
    },
    [=](atom::drain) { self->state.start_drain(); },
    [=](atom::say, const std::string& lobby_id, const std::string& session_id,
        const std::string& text) {
      auto& st = self->state;
      if (st.gateway && st.registered)
        self->send(st.gateway, atom::say_v, lobby_id, session_id, text);
    },
    [=](atom::deregister) -> caf::result<bool> {
      auto& st = self->state;
      st.leaving = true;
      st.stop_runs("shutting down");
      if (!st.gateway || !st.registered || st.provider_id.empty())
        return false;
      auto rp = self->make_response_promise<bool>();
      self->request(st.gateway, st.config.stop_timeout, atom::deregister_v,
                    st.provider_id, st.config.key)
        .then(
          [=](bool ok) mutable {
            spdlog::info("deregistered {}", self->state.provider_id);
            rp.deliver(ok);
          },
          [=](caf::error& err) mutable {
            spdlog::warn("deregistration failed: {}",
                         self->home_system().render(err));
            rp.deliver(false);
          });
      return rp;
    },
  };
}

} // namespace vb
