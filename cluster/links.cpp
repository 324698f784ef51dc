// The table of CAF provider links across instances, and the lines said
// here for the other instances.
#include <optional>
#include <set>
#include <unordered_map>

#include <caf/io/all.hpp>

#include <spdlog/spdlog.h>

#include "cluster/internal.hpp"

namespace vb {

using namespace cluster_detail;

// -- CAF provider links ------------------------------------------------------------

namespace {

/// The link table with the messages it sends itself (etcd's answers, its
/// timer, lines to send again).
using links_actor = provider_links_actor::extend<
  caf::reacts_to<tick>, caf::reacts_to<atom::get, bool>,
  caf::reacts_to<links_read>, caf::reacts_to<links_watch>,
  caf::reacts_to<links_lookup>, caf::reacts_to<links_resend>>;

/// Sends a line said here to another instance's relay.
void send_line(const cluster_relay_actor& relay, const relay_line& l) {
  if (!l.seat.session_id.empty())
    caf::anon_send(relay, atom::seats_v, l.seat, atom::remote_v);
  else if (l.said)
    caf::anon_send(relay, atom::say_v, l.lobby_id, l.who, l.text,
                   l.provider_id, atom::remote_v);
  else
    caf::anon_send(relay, atom::chat_v, l.lobby_id, l.who, l.text,
                   atom::remote_v);
}

struct links_state {
  static inline constexpr const char* name = "cluster-links";

  struct holder {
    std::string instance;
    std::string cluster; // HOST:PORT of its relay
  };

  links_actor::stateful_pointer<links_state> self = nullptr;
  std::shared_ptr<cluster_context> ctx;
  std::string cluster;
  /// This instance's relay (what the others reach on its cluster port).
  cluster_relay_actor own;
  /// What connects to the others' relays: plain CAF, or mutual TLS.
  caf::io::middleman_actor transport;
  std::string prefix;
  /// Links held here, and the lease they were written under.
  std::set<std::string> local;
  int64_t written_lease = 0;
  /// Every instance's links, from the watch.
  std::unordered_map<std::string, holder> table;
  /// Relays connected so far, by HOST:PORT.
  std::unordered_map<std::string, cluster_relay_actor> relays;
  /// The other instances' relays (HOST:PORT), by instance id,
  /// for the lines broadcast to every instance (chat, say).
  std::unordered_map<std::string, std::string> peers;
  std::string instances_prefix;
  uint64_t watch_id = 0;
  uint64_t gen = 0;
  uint64_t instances_watch = 0;
  uint64_t instances_gen = 0;

  std::string value() const {
    return json{{"iid", ctx->instance_id}, {"cluster", cluster}}.dump();
  }

  void put(const std::string& id) {
    auto lease = ctx->lease.load();
    if (lease == 0)
      return; // written when the next lease is live
    etcd::put_request p;
    p.key = prefix + id;
    p.value = value();
    p.lease = lease;
    ctx->client->put(p, txn_timeout, [id](etcd::put_result r) {
      if (r.error)
        spdlog::warn("cluster: recording the link of provider {} failed: {}",
                     id, describe(r.error));
    });
  }

  void drop(const std::string& id) {
    // Only our own record: the provider may have registered elsewhere since.
    etcd::txn_request t;
    t.compares.push_back({prefix + id, etcd::compare_target::value,
                          etcd::compare_result::equal, value(), 0});
    etcd::delete_request d;
    d.key = prefix + id;
    t.success.push_back(etcd::txn_op::make(std::move(d)));
    ctx->client->txn(std::move(t), txn_timeout, [](etcd::txn_result) {});
  }

  void apply_instance(const std::string& key, const std::string* v) {
    if (key.compare(0, instances_prefix.size(), instances_prefix) != 0)
      return;
    auto id = key.substr(instances_prefix.size());
    if (id == ctx->instance_id)
      return;
    auto j = v ? json::parse(*v, nullptr, false) : json{};
    if (v == nullptr || !j.is_object() || !j.contains("cluster")
        || !j["cluster"].is_string()) {
      peers.erase(id);
      return;
    }
    auto addr = j["cluster"].get<std::string>();
    auto& known = peers[id];
    if (known != addr) {
      known = addr;
      // Connected now, so that the first line broadcast to it does not
      // wait for the connection (or get lost with it).
      with_relay(addr, [](cluster_relay_actor) {}, [](caf::error) {});
    }
  }

  /// Connects to an instance's relay (once), then runs `then` with it.
  void with_relay(const std::string& addr,
                  std::function<void(cluster_relay_actor)> then,
                  std::function<void(caf::error)> failed) {
    if (auto g = relays.find(addr); g != relays.end())
      return then(g->second);
    auto colon = addr.rfind(':');
    if (colon == std::string::npos)
      return failed(make_error(ec::unavailable, "bad cluster address " + addr));
    auto host = addr.substr(0, colon);
    auto port = static_cast<uint16_t>(std::stoul(addr.substr(colon + 1)));
    self
      ->request(transport, std::chrono::seconds(3),
                caf::connect_atom::value, host, port)
      .then(
        [this, addr, then, failed](const caf::node_id&, caf::strong_actor_ptr& ptr,
                                   const std::set<std::string>& ifs) {
          if (!ptr)
            return failed(make_error(ec::unavailable, "nothing published at " + addr));
          // What remote_actor<T> checks: the interface published there.
          if (!self->system().assignable<cluster_relay_actor>(ifs))
            return failed(make_error(ec::unavailable,
                                     "not a voicebot-server relay at " + addr));
          auto relay = caf::actor_cast<cluster_relay_actor>(ptr);
          relays[addr] = relay;
          self->monitor(relay);
          // Newly connected (a new instance, or one restarted): where its
          // voice sockets are, and ours for it (SPEC §9).
          caf::anon_send(relay, atom::seats_v);
          if (own)
            caf::anon_send(own, atom::seats_v);
          then(relay);
        },
        [addr, failed](caf::error& err) {
          failed(make_error(ec::unavailable, "cannot reach the instance at "
                                               + addr + ": " + caf::to_string(err)));
        });
  }

  /// Sends a line to every other instance, best effort.
  void broadcast(const relay_line& line) {
    for (auto& [id, addr] : peers)
      deliver(addr, line, 0);
  }

  /// One line to one instance; a connection that cannot be made yet (the
  /// instance is starting, the machine is busy) is tried twice more.
  void deliver(const std::string& addr, const relay_line& line, int attempt) {
    with_relay(
      addr, [line](cluster_relay_actor relay) { send_line(relay, line); },
      [this, addr, line, attempt](caf::error err) {
        if (attempt >= 2) {
          spdlog::debug("cluster: a broadcast line was not delivered to {}: {}",
                        addr, caf::to_string(err));
          return;
        }
        self->delayed_send(self, std::chrono::milliseconds(300 * (attempt + 1)),
                           links_resend{addr, line, attempt + 1});
      });
  }

  void resend(links_resend& m) {
    // Only to an instance that is still there.
    for (auto& [id, addr] : peers)
      if (addr == m.addr)
        return deliver(m.addr, m.line, m.attempt);
  }

  void apply(const std::string& key, const std::string* v) {
    if (key.compare(0, prefix.size(), prefix) != 0)
      return;
    auto id = key.substr(prefix.size());
    if (v == nullptr) {
      table.erase(id);
      return;
    }
    auto j = json::parse(*v, nullptr, false);
    if (!j.is_object())
      return;
    table[id] = holder{j.value("iid", ""), j.value("cluster", "")};
  }

  void start(bool instances) {
    auto me = caf::actor_cast<links_actor>(self);
    range_all(ctx->client, instances ? instances_prefix : prefix, 0,
              [me, instances](etcd::etcd_error e, int64_t rev,
                              std::vector<etcd::key_value> kvs) {
                caf::anon_send(me, links_read{std::move(e), rev, std::move(kvs),
                                              instances});
              });
  }

  void read(links_read& r) {
    if (r.error) {
      spdlog::warn("cluster: reading {} failed ({}); retrying",
                   r.instances ? instances_prefix : prefix, describe(r.error));
      self->delayed_send(self, std::chrono::seconds(1), atom::get_v, r.instances);
      return;
    }
    if (r.instances)
      peers.clear();
    else
      table.clear();
    for (auto& kv : r.kvs) {
      if (r.instances)
        apply_instance(kv.key, &kv.value);
      else
        apply(kv.key, &kv.value);
    }
    etcd::watch_request w;
    w.key = r.instances ? instances_prefix : prefix;
    w.start_revision = r.revision + 1;
    w.prev_kv = false;
    auto me = caf::actor_cast<links_actor>(self);
    auto g = r.instances ? ++instances_gen : ++gen;
    auto which = r.instances;
    auto id = ctx->client->watch(w, [me, g, which](const etcd::watch_update& u) {
      caf::anon_send(me, links_watch{g, u, which});
    });
    (r.instances ? instances_watch : watch_id) = id;
  }

  void watched(links_watch& m) {
    if (m.gen != (m.instances ? instances_gen : gen))
      return;
    if (m.update.what == etcd::watch_update::kind::compacted) {
      ctx->client->cancel_watch(m.instances ? instances_watch : watch_id);
      ++(m.instances ? instances_gen : gen);
      start(m.instances);
      return;
    }
    for (auto& ev : m.update.events) {
      auto* v = ev.type == etcd::event_type::put ? &ev.kv.value : nullptr;
      if (m.instances)
        apply_instance(ev.kv.key, v);
      else
        apply(ev.kv.key, v);
    }
  }

  /// Resolutions waiting for a read of a link the table did not know.
  std::unordered_map<
    std::string, std::vector<caf::typed_response_promise<cluster_relay_actor>>>
    lookups;

  void answer(const holder* h,
              caf::typed_response_promise<cluster_relay_actor> rp) {
    if (h == nullptr || h->instance == ctx->instance_id || h->cluster.empty()) {
      rp.deliver(make_error(ec::unavailable, "no instance holds the link"));
      return;
    }
    with_relay(
      h->cluster, [rp](cluster_relay_actor relay) mutable { rp.deliver(relay); },
      [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
  }

  caf::result<cluster_relay_actor> resolve(const std::string& id) {
    auto rp = self->make_response_promise<cluster_relay_actor>();
    if (auto i = table.find(id); i != table.end()) {
      answer(&i->second, rp);
      return rp;
    }
    // Not in the table: the watch may not have brought the record yet (a
    // provider that registered elsewhere a moment ago). etcd itself says.
    auto& waiting = lookups[id];
    waiting.push_back(rp);
    if (waiting.size() == 1) {
      etcd::range_request r;
      r.key = prefix + id;
      auto me = caf::actor_cast<links_actor>(self);
      ctx->client->range(r, read_timeout, [me, id](etcd::range_result res) {
        caf::anon_send(me, links_lookup{id, std::move(res)});
      });
    }
    return rp;
  }

  void looked_up(links_lookup& m) {
    auto waiting = std::move(lookups[m.id]);
    lookups.erase(m.id);
    // The record read serves these resolutions only: the table stays the
    // watch's (a removal it brings meanwhile must not be undone by a read).
    std::optional<holder> h;
    if (auto i = table.find(m.id); i != table.end())
      h = i->second;
    else if (!m.result.error && !m.result.kvs.empty()) {
      auto j = json::parse(m.result.kvs.front().value, nullptr, false);
      if (j.is_object())
        h = holder{j.value("iid", ""), j.value("cluster", "")};
    }
    for (auto& rp : waiting)
      answer(h ? &*h : nullptr, rp);
  }
};

links_actor::behavior_type
links_fn(links_actor::stateful_pointer<links_state> self,
                       std::shared_ptr<cluster_context> ctx, std::string cluster,
                       cluster_relay_actor own, caf::io::middleman_actor transport) {
  auto& st = self->state;
  st.self = self;
  st.ctx = std::move(ctx);
  st.cluster = std::move(cluster);
  st.own = std::move(own);
  st.transport = std::move(transport);
  st.prefix = st.ctx->prefix + "links/";
  st.instances_prefix = st.ctx->prefix + "instances/";
  st.start(false);
  st.start(true);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& relays = self->state.relays;
    for (auto i = relays.begin(); i != relays.end(); ++i)
      if (i->second.address() == msg.source) {
        relays.erase(i);
        return;
      }
  });
  self->delayed_send(self, std::chrono::seconds(1), tick{});
  self->attach_functor([ctx = st.ctx, self] {
    ctx->client->cancel_watch(self->state.watch_id);
    ctx->client->cancel_watch(self->state.instances_watch);
  });
  return {
    [=](atom::chat, const std::string& lobby_id, const std::string& nick,
        const std::string& text) {
      self->state.broadcast(relay_line{false, lobby_id, nick, text, {}});
    },
    [=](atom::say, const std::string& lobby_id, const std::string& session_id,
        const std::string& text, const std::string& provider_id) {
      self->state.broadcast(
        relay_line{true, lobby_id, session_id, text, provider_id, {}});
    },
    [=](atom::seats, const voice_seat& seat) {
      relay_line line;
      line.lobby_id = seat.lobby_id;
      line.seat = seat;
      self->state.broadcast(line);
    },
    [=](atom::registration, const std::string& id) {
      self->state.local.insert(id);
      self->state.put(id);
    },
    [=](atom::deregister, const std::string& id) {
      self->state.local.erase(id);
      self->state.drop(id);
    },
    [=](atom::resolve,
        const std::string& id) -> caf::result<cluster_relay_actor> {
      return self->state.resolve(id);
    },
    [=](atom::probe, const std::string& id) {
      return self->state.table.count(id) != 0;
    },
    [=](tick) {
      // A new lease (after a fence): the links are written again under it.
      auto& st = self->state;
      self->delayed_send(self, std::chrono::seconds(1), tick{});
      auto lease = st.ctx->lease.load();
      if (lease != 0 && lease != st.written_lease) {
        st.written_lease = lease;
        for (auto& id : st.local)
          st.put(id);
      }
    },
    [=](atom::get, bool instances) { self->state.start(instances); },
    [=](links_read& r) { self->state.read(r); },
    [=](links_watch& m) { self->state.watched(m); },
    [=](links_lookup& m) { self->state.looked_up(m); },
    [=](links_resend& m) { self->state.resend(m); },
  };
}


} // namespace

provider_links_actor spawn_cluster_links(caf::actor_system& sys,
                                         std::shared_ptr<cluster_context> ctx,
                                         std::string cluster,
                                         cluster_relay_actor own,
                                         caf::io::middleman_actor transport) {
  return sys.spawn(links_fn, std::move(ctx), std::move(cluster),
                   std::move(own), std::move(transport));
}

} // namespace vb
