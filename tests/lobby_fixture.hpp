// The lobby directory and its lobbies over a real journal store, with a
// real registry and a dispatcher mock that answers from a script (or the real
// dispatcher over a scripted link), and subscribers that record what they
// get: the fixtures of the lobby and voice actor tests.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>

#include "actors/dispatcher.hpp"
#include "actors/directory.hpp"
#include "actors/registry.hpp"
#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "fixture.hpp"
#include "memory_store.hpp"
#include "model_samples.hpp"
#include "mock_dispatcher.hpp"
#include "scripted_link.hpp"

namespace vb::test {

using namespace std::chrono_literals;


/// What the mock dispatcher does and saw.
struct provider_script {
  /// Per provider name: "accept", "unavailable" or "reject".
  std::map<std::string, std::string> mode;
  std::vector<std::pair<std::string, dispatch_request>> joins;
  std::vector<std::string> stops;
  /// Lobby events sent to bots: provider id, run id, event.
  struct bot_event {
    std::string provider_id;
    std::string run_id;
    lobby_event event;
  };
  std::vector<bot_event> events;
  int next_run = 0;
};

/// A dispatcher that answers from the script instead of calling providers:
/// the first candidate only (failover is the real dispatcher's, tested over
/// a scripted link). It tells the registry nothing (the real one reports
/// provider health), so what the registry learns in these tests, the lobby
/// told it.
inline dispatcher_actor::behavior_type
mock_dispatcher(dispatcher_actor::pointer self,
                std::shared_ptr<provider_script> script) {
  return test::mock_dispatcher_of(
    [=](atom::join, const provider_list& candidates,
        const dispatch_request& req) -> caf::result<placed> {
      REQUIRE_FALSE(candidates.empty());
      auto& p = candidates.front();
      script->joins.emplace_back(p->name, req);
      auto mode = script->mode.count(p->name) ? script->mode[p->name]
                                              : "accept";
      if (mode == "unavailable")
        return make_error(ec::unavailable, "refused");
      if (mode == "reject")
        return make_error(ec::rejected, "answered 500");
      return placed{p, "run-" + std::to_string(++script->next_run)};
    },
    [=](atom::stop, const provider&, const std::string& run_id) {
      script->stops.push_back(run_id);
      return true;
    },
    [=](atom::probe, const provider&) { return true; },
    [=](atom::done, uint64_t, const http_result&) {
      FAIL("no HTTP link in this test");
    },
    [=](atom::expire, uint64_t) {},
    [=](atom::event, const std::string& provider_id,
        const std::string& run_id, const lobby_event& ev) {
      script->events.push_back({provider_id, run_id, ev});
    });
}

struct lobby_fixture : test::fixture {
  test::temp_dir dir;
  std::shared_ptr<server_stats> stats = std::make_shared<server_stats>();
  std::shared_ptr<provider_script> script
    = std::make_shared<provider_script>();
  store_actor provider_store;
  store_handles lobby_files;
  registry_actor reg;
  dispatcher_actor disp;
  lobby_directory_actor aut;

  lobby_fixture() {
    provider_store = sys.spawn(test::memory_store);
    registry_config rc;
    rc.flush_interval = 3600s;
    reg = sys.spawn(registry, provider_store, std::vector<provider>{}, rc,
                    stats);
    disp = sys.spawn(mock_dispatcher, script);
    run();
  }

  /// The real dispatcher over a scripted provider link instead of the mock
  /// (call before start()).
  std::shared_ptr<test::scripted_link> link;
  void use_real_dispatcher() {
    self->send_exit(disp, caf::exit_reason::user_shutdown);
    link = std::make_shared<test::scripted_link>();
    dispatcher_config dc;
    dc.registry = reg;
    disp = sys.spawn(dispatcher, std::shared_ptr<http_link>{link}, dc);
    run();
  }

  provider_status status_of(const std::string& provider_id) {
    return ask<provider>(reg, atom::get_v, provider_id).status;
  }

  /// Unseen for 5 s or more.
  bool stale(const std::string& provider_id) {
    auto report = ask<stale_report>(reg, atom::stale_v,
                                    caf::timespan{std::chrono::seconds(5)});
    for (auto& e : report.entries)
      if (e.provider_id == provider_id)
        return true;
    return false;
  }

  /// The limits start() gives the directory.
  size_t max_lobbies = lobby_peers{}.max_lobbies;
  size_t max_members = lobby_peers{}.max_members;
  size_t max_voice_peers = lobby_peers{}.max_voice_peers;
  caf::timespan session_idle_timeout = lobby_peers{}.session_idle_timeout;
  caf::timespan empty_lobby_grace = lobby_peers{}.empty_lobby_grace;
  /// Which instance stops an empty lobby's bots (cluster: the sweeper).
  std::shared_ptr<const duty_port> duty = local_duty();
  /// Where lines and voice seats said here go beyond this instance.
  std::shared_ptr<const line_port> lines = local_lines();
  /// Who may take a join's name (cluster mode: a claims actor).
  std::shared_ptr<const claim_port> claims = local_claims();

  /// The directory over a real journal store in the test's directory.
  void start(std::vector<lobby> initial = {}) {
    auto seed = std::make_shared<journal_store_seed>();
    load_lobbies(dir.path, *seed);
    lobby_files = spawn_journal_store(sys, seed, stats, false);
    lobby_peers peers{reg, disp, lobby_files.store};
    peers.max_lobbies = max_lobbies;
    peers.max_members = max_members;
    peers.max_voice_peers = max_voice_peers;
    peers.stats = stats;
    peers.session_idle_timeout = session_idle_timeout;
    peers.empty_lobby_grace = empty_lobby_grace;
    peers.duty = duty;
    peers.lines = lines;
    peers.claims = claims;
    aut = sys.spawn(lobby_directory, to_images(std::move(initial)), peers,
                    stats);
    self->send(reg, atom::peers_v, aut, disp);
    run();
  }

  /// The directory over the store double.
  void start_on(store_actor store) {
    lobby_files.store = std::move(store);
    lobby_peers peers{reg, disp, lobby_files.store};
    peers.lines = lines;
    peers.claims = claims;
    aut = sys.spawn(lobby_directory, std::vector<lobby_image>{}, peers, stats);
    self->send(reg, atom::peers_v, aut, disp);
    run();
  }

  /// What a restarted server would load.
  std::vector<lobby> on_disk() {
    journal_store_seed seed;
    std::vector<lobby> result;
    for (auto& img : load_lobbies(dir.path, seed))
      result.push_back(to_lobby(img));
    return result;
  }

  std::string add_provider(const std::string& name,
                           std::vector<std::string> bots,
                           transport via = transport::http) {
    provider_registration r;
    r.name = name;
    r.via = via;
    if (via == transport::http)
      r.base_url = "http://127.0.0.1:9000/" + name;
    for (auto& b : bots)
      r.bots.push_back(bot_info{b, ""});
    return ask<std::string>(reg, atom::registration_v, r);
  }

  lobby create(const std::string& name, bool is_private = false) {
    return ask<lobby_created>(aut, atom::create_v, lobby_create{name, is_private})
      .value;
  }

  session join(const std::string& lobby_id, const std::string& bot,
               const std::string& nick, const std::string& provider_id = {}) {
    return ask<session>(aut, atom::join_v, lobby_id,
                        bot_join{bot, nick, provider_id});
  }

  caf::error join_error(const std::string& lobby_id, const std::string& bot,
                        const std::string& nick) {
    return ask_error<session>(aut, atom::join_v, lobby_id,
                              bot_join{bot, nick, ""});
  }

  lobby get(const std::string& id) {
    return ask<lobby>(aut, atom::get_v, id);
  }

  ~lobby_fixture() {
    shut_down(aut, disp, reg);
    shut_down(lobby_files.store, lobby_files.writer, provider_store);
  }
};


/// What a subscriber saw: "members" once, then the events' types; and, as
/// a voice socket, the voice messages (text, and whether it speaks for no
/// one now), the latest table of voice sockets and the signals.
struct feed {
  std::vector<std::string> seen;
  lobby members;
  std::vector<lobby_event> events;
  /// The reasons of the events that came with one, by index in `events`.
  std::map<size_t, leave_reason> reasons;
  std::vector<std::pair<std::string, bool>> voice;
  voice_table_ptr table;
  std::vector<std::pair<std::string, std::string>> signals;
};

inline lobby_subscriber_actor::behavior_type
recorder(lobby_subscriber_actor::pointer, std::shared_ptr<feed> f) {
  return {
    [=](atom::subscribe, const lobby& l) {
      f->seen.push_back("members");
      f->members = l;
    },
    [=](atom::event, const lobby_event& ev) {
      f->seen.push_back(to_string(ev.type));
      f->events.push_back(ev);
    },
    [=](atom::event, const lobby_event& ev, leave_reason why) {
      f->seen.push_back(to_string(ev.type) + std::string{" ("} + to_string(why)
                        + ")");
      f->events.push_back(ev);
      f->reasons[f->events.size() - 1] = why;
    },
    [=](atom::peers, const voice_table_ptr& t) { f->table = t; },
    [=](atom::signal, const std::string& from, const std::string& data) {
      f->signals.emplace_back(from, data);
    },
    [=](atom::hello, const voice_hello&) {
      FAIL("a hello is the socket's, not the lobby's");
    },
    [=](atom::voice, const std::string& text, bool silenced) {
      f->voice.emplace_back(text, silenced);
    },
  };
}

struct events_fixture : lobby_fixture {
  std::vector<caf::actor> spawned;

  lobby_actor lobby_of(const std::string& id) {
    return ask<lobby_actor>(aut, atom::subscribe_v, id);
  }

  std::shared_ptr<feed> subscribe(const std::string& lobby_id) {
    auto f = std::make_shared<feed>();
    auto sub = sys.spawn(recorder, f);
    spawned.push_back(caf::actor_cast<caf::actor>(sub));
    self->send(lobby_of(lobby_id), atom::subscribe_v, sub);
    run();
    return f;
  }

  session person(const std::string& lobby_id, const std::string& nick) {
    return ask<person_session>(aut, atom::add_v, lobby_id, nick).value;
  }

  size_t live_subscribers(const std::string& lobby_id) {
    auto ptr = caf::actor_cast<lobby_actor::stateful_pointer<lobby_state>>(
      lobby_of(lobby_id));
    return ptr->state.subscribers.size();
  }

  /// The events bots got, as "run: type nick" lines.
  std::vector<std::string> bot_events() {
    std::vector<std::string> out;
    for (auto& e : script->events)
      out.push_back(e.run_id + ": " + to_string(e.event.type) + " " + e.event.member.nick
                    + (e.event.text.empty() ? "" : " " + e.event.text));
    return out;
  }

  ~events_fixture() {
    for (auto& a : spawned)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    run();
  }
};

using strings = std::vector<std::string>;

} // namespace vb::test
