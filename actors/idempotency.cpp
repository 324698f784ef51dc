#include "actors/idempotency.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/stats.hpp"
#include "model/clock.hpp"

namespace vb {

namespace {

double seconds_of(caf::timespan d) {
  return std::chrono::duration<double>(d).count();
}

caf::error reused() {
  return make_error(ec::idempotency_key_reused,
                    std::string{"Idempotency-Key was used with another request"});
}

store_change del_change(const std::string& key) {
  return store_change{idempotency_del_record(key),
                      {image_op{{}, key, nullptr}}};
}

/// One entry from its snapshot JSON (idempotency_entry_json), through the
/// validated snapshot decoder; false (and `why`) unless it is exactly one
/// entry, of `key`.
bool decode_entry(const std::string& json, const std::string& key,
                  idempotency_entry& out, std::string& why) {
  std::vector<idempotency_entry> es;
  if (!decode_idempotency(encode_idempotency_fragments({&json}), es, why))
    return false;
  if (es.size() != 1 || es[0].key != key) {
    why = "not one entry of its key";
    return false;
  }
  out = std::move(es[0]);
  return true;
}

} // namespace

// -- start-up -------------------------------------------------------------------

std::vector<idempotency_entry>
load_idempotency_keys(const std::string& dir, journal_store_seed& seed,
                      server_stats* stats) {
  auto result = load_values<idempotency_replay>(dir, idempotency_file_name,
                                                decode_idempotency, seed, stats);
  seed.render = render_idempotency_keys;
  seed.image.reserve(result.size());
  for (auto& e : result)
    seed.image.apply(image_op{
      {}, e.key, std::make_shared<const std::string>(idempotency_entry_json(e))});
  spdlog::info("loaded {} idempotency keys from {}/{}", result.size(), dir,
               idempotency_file_name);
  return result;
}

std::string render_idempotency_keys(const image_entries& image, uint64_t seq) {
  std::vector<const std::string*> parts;
  parts.reserve(image.size());
  for (auto& [order, e] : image)
    if (e->split == 0 && e->json)
      parts.push_back(e->json.get());
  return encode_idempotency_fragments(parts, seq);
}

// -- state methods --------------------------------------------------------------

double idempotency_state::now() const {
  return wall_start
         + std::chrono::duration<double>(self->clock().now() - clock_start)
             .count();
}

void idempotency_state::init(std::vector<idempotency_entry> initial) {
  keys.reserve(initial.size());
  for (auto& e : initial) {
    if (e.key.empty() || keys.count(e.key) != 0)
      continue;
    by_expiry.emplace(e.expires_at, e.key);
    keys.emplace(std::move(e.key),
                 entry{std::move(e.fingerprint), std::move(e.lobby_id),
                       std::move(e.answer), e.expires_at, false});
  }
}

caf::result<session> idempotency_state::join(std::string key,
                                             std::string fingerprint,
                                             std::string lobby_id,
                                             bot_join bj) {
  // A key past its expiry is as if it were not there (the sweep deletes it).
  if (auto i = keys.find(key); i != keys.end() && i->second.expires_at > now()) {
    if (i->second.fingerprint != fingerprint)
      return reused();
    if (stats)
      ++stats->idempotent_replays;
    return i->second.answer;
  }
  // (A promise takes the request over: made only once it is answered so.)
  if (auto i = running.find(key); i != running.end()) {
    // The same request at the same time: it gets the first one's answer.
    if (i->second.fingerprint != fingerprint)
      return reused();
    if (stats)
      ++stats->idempotent_replays;
    auto rp = self->make_response_promise<session>();
    i->second.waiting.push_back(rp);
    return rp;
  }
  auto rp = self->make_response_promise<session>();
  auto& r = running[key];
  r.fingerprint = std::move(fingerprint);
  r.waiting.push_back(rp);
  self
    ->request(directory, config.join_timeout, atom::join_v, lobby_id,
              std::move(bj))
    .then(
      [this, key, lobby_id](session& s) { accepted(key, lobby_id, std::move(s)); },
      // Only an accepted join is kept: an error changed nothing, and a retry
      // runs the join again.
      [this, key](caf::error& err) { answer(key, std::move(err)); });
  return rp;
}

void idempotency_state::accepted(const std::string& key,
                                 const std::string& lobby_id, session s) {
  auto r = running.find(key);
  if (r == running.end())
    return; // not expected: one join per running key
  idempotency_entry e{key, r->second.fingerprint, lobby_id, std::move(s),
                      now() + seconds_of(config.ttl)};
  auto old = keys.find(key);
  auto adds = old == keys.end() || old->second.leaving;
  auto victims = make_room(adds);
  if (adds)
    ++adding;
  store_batch batch;
  batch.reserve(victims.size() + 1);
  for (auto& v : victims)
    batch.push_back(del_change(v));
  auto json = std::make_shared<const std::string>(idempotency_entry_json(e));
  batch.push_back(
    store_change{idempotency_put_record(*json), {image_op{{}, key, json}}});
  self->request(store, config.store_timeout, atom::write_v, std::move(batch))
    .then(
      [this, e, victims, adds](uint64_t) {
        if (adds)
          --adding;
        for (auto& v : victims)
          forget(v);
        auto answer_value = e.answer;
        remember(e);
        answer(e.key, answer_value);
      },
      [this, e, victims, adds](caf::error& err) {
        if (adds)
          --adding;
        unmark(victims);
        // The member is durable in its lobby, and the lobby answers a retry
        // (same bot and nick) with the same session: answer it, unkept.
        spdlog::warn("idempotency: the record of key \"{}\" could not be "
                     "written ({}): answered, but a retry joins again",
                     e.key, to_string(err));
        answer(e.key, e.answer);
      });
}

void idempotency_state::answer(const std::string& key,
                               const caf::expected<session>& result) {
  auto r = running.find(key);
  if (r == running.end())
    return;
  auto waiting = std::move(r->second.waiting);
  running.erase(r);
  for (auto& rp : waiting) {
    if (result)
      rp.deliver(*result);
    else
      rp.deliver(result.error());
  }
}

std::vector<std::string> idempotency_state::make_room(bool adds_key) {
  std::vector<std::string> victims;
  if (!adds_key)
    return victims;
  auto live = [this] { return keys.size() - leaving + adding; };
  for (auto i = by_expiry.begin();
       live() + 1 > config.max_keys && i != by_expiry.end(); ++i) {
    auto& e = keys.at(i->second);
    // Keys already on their way out, or being joined again, stay as they are.
    if (e.leaving || running.count(i->second) != 0)
      continue;
    e.leaving = true;
    ++leaving;
    victims.push_back(i->second);
  }
  if (!victims.empty() && !warned_full) {
    warned_full = true;
    spdlog::warn("idempotency: {} keys kept (the bound): the keys that expire "
                 "soonest are forgotten early to make room",
                 config.max_keys);
  }
  return victims;
}

void idempotency_state::remember(idempotency_entry e) {
  auto [i, added] = keys.try_emplace(e.key);
  if (!added) {
    by_expiry.erase({i->second.expires_at, e.key});
    if (i->second.leaving)
      --leaving;
  }
  i->second = entry{std::move(e.fingerprint), std::move(e.lobby_id),
                    std::move(e.answer), e.expires_at, false};
  by_expiry.emplace(i->second.expires_at, i->first);
}

void idempotency_state::forget(const std::string& key) {
  auto i = keys.find(key);
  if (i == keys.end())
    return;
  if (i->second.leaving)
    --leaving;
  by_expiry.erase({i->second.expires_at, key});
  keys.erase(i);
}

void idempotency_state::unmark(const std::vector<std::string>& ks) {
  for (auto& k : ks)
    if (auto i = keys.find(k); i != keys.end() && i->second.leaving) {
      i->second.leaving = false;
      --leaving;
    }
}

void idempotency_state::sweep() {
  warned_full = false;
  if (sweeping)
    return;
  auto t = now();
  std::vector<std::string> expired;
  for (auto& [expires_at, key] : by_expiry) {
    if (expires_at > t || expired.size() >= config.sweep_batch)
      break;
    auto& e = keys.at(key);
    if (e.leaving || running.count(key) != 0)
      continue;
    e.leaving = true;
    ++leaving;
    expired.push_back(key);
  }
  if (expired.empty())
    return;
  sweeping = true;
  store_batch batch;
  batch.reserve(expired.size());
  for (auto& k : expired)
    batch.push_back(del_change(k));
  self->request(store, config.store_timeout, atom::write_v, std::move(batch))
    .then(
      [this, expired](uint64_t) {
        sweeping = false;
        for (auto& k : expired)
          forget(k);
        spdlog::debug("idempotency: {} expired keys deleted", expired.size());
        // A full batch: there may be more; go on at once.
        if (expired.size() >= config.sweep_batch)
          sweep();
      },
      [this, expired](caf::error& err) {
        sweeping = false;
        unmark(expired);
        // Still ignored on lookup; the next sweep tries again.
        spdlog::warn("idempotency: deleting {} expired keys failed: {}",
                     expired.size(), to_string(err));
      });
}

void idempotency_state::apply_remote(const remote_batch& batch) {
  std::set<std::string> named;
  for (auto& c : batch.changes) {
    if (!c.parent.empty() || c.key.empty()) {
      spdlog::warn("idempotency: remote change '{}/{}' is not a key: skipped",
                   c.parent, c.key);
      continue;
    }
    named.insert(c.key);
    if (!c.json) {
      forget(c.key);
      continue;
    }
    idempotency_entry e;
    std::string why;
    if (!decode_entry(*c.json, c.key, e, why)) {
      spdlog::warn("idempotency: remote key \"{}\" skipped: {}", c.key, why);
      continue;
    }
    // The first answer stays: an entry of the key is not replaced, unless
    // it expired (the key was answered anew); one whose delete is on its
    // way to the store is left to it.
    if (auto i = keys.find(c.key);
        i != keys.end() && (i->second.leaving || i->second.expires_at > now()))
      continue;
    remember(std::move(e));
  }
  if (!batch.resync)
    return;
  std::vector<std::string> gone;
  for (auto& [key, e] : keys)
    if (named.count(key) == 0)
      gone.push_back(key);
  for (auto& k : gone)
    forget(k);
}

// -- the actor ------------------------------------------------------------------

idempotency_actor::behavior_type
idempotency(idempotency_actor::stateful_pointer<idempotency_state> self,
            lobby_directory_actor directory, store_actor store,
            std::vector<idempotency_entry> initial, idempotency_config config,
            std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.config = config;
  st.directory = std::move(directory);
  st.store = std::move(store);
  st.stats = std::move(stats);
  st.wall_start = unix_now();
  st.clock_start = self->clock().now();
  st.init(std::move(initial));
  // The first sweep at once: keys that expired while the server was down.
  self->send(self, atom::sweep_v);
  // Shutting down: joins in flight are answered now, not when their client
  // gives up (the member, if any, is durable in its lobby; a retry after
  // the restart gets it through the same-nick rule).
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    std::vector<std::string> keys;
    for (auto& kv : st.running)
      keys.push_back(kv.first);
    for (auto& k : keys)
      st.answer(k, caf::expected<session>{
                     make_error(ec::unavailable, "the server is shutting down")});
    self->quit(msg.reason);
  });
  return {
    [=](atom::join, std::string& key, std::string& fingerprint,
        std::string& lobby_id, bot_join& bj) -> caf::result<session> {
      return self->state.join(std::move(key), std::move(fingerprint),
                              std::move(lobby_id), std::move(bj));
    },
    [=](atom::sweep) {
      self->delayed_send(self, self->state.config.sweep_interval,
                         atom::sweep_v);
      self->state.sweep();
    },
    [=](atom::remote, const remote_batch& batch) {
      self->state.apply_remote(batch);
    },
  };
}

} // namespace vb
