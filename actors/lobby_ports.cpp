// The lobby's ports (actors/ports.hpp): who may take a join's name, where
// lines said here go, and who stops an empty lobby's bots, embedded and
// cluster.
#include <caf/all.hpp>

#include "actors/lobby.hpp"
#include "actors/lobby_shared.hpp"
#include "actors/stats.hpp"

namespace vb {

namespace {

/// Embedded: this lobby holds every member of its names.
class local_claim_port final : public claim_port {
public:
  void reserve(lobby_state& lobby, const join_key& key, const bot_join& j,
               const std::string& session_id) const override {
    std::optional<session> holder;
    if (auto i = lobby.bots.find(key); i != lobby.bots.end())
      holder = i->second->value;
    lobby.claimed(key, j, session_id, holder);
  }

  void release(lobby_state&, const std::string&, const std::string&,
               const std::string&) const override {
    // Nothing was reserved.
  }

  store_change
  join_change(const std::string& lobby_id,
              const std::shared_ptr<const lobby_image::member>& m) const override {
    return vb::join_change(lobby_id, m);
  }

  store_change leave_change(const std::string& lobby_id,
                            const session& s) const override {
    return vb::leave_change(lobby_id, s.session_id);
  }
};

/// Cluster: etcd decides, never this instance's cache (which may not have
/// seen another instance's leave yet), so two instances never dispatch one
/// name at once (design §4.3).
class reserved_claim_port final : public claim_port {
public:
  explicit reserved_claim_port(claims_actor claims) : claims_(std::move(claims)) {
  }

  void reserve(lobby_state& lobby, const join_key& key, const bot_join& j,
               const std::string& session_id) const override {
    auto* l = &lobby;
    lobby.self
      ->request(claims_, lobby.peers.dispatch_wait * 2, atom::reserve_v,
                lobby.value.id, j.bot_name, j.nick, session_id)
      .then(
        [l, key, j, session_id](std::string& existing) {
          if (existing.empty())
            return l->claimed(key, j, session_id, std::nullopt);
          // A member holds it (made here or on another instance: then it
          // arrives here through the store's watch): that is the answer.
          session s;
          std::string why;
          if (!decode_member(existing, l->value.id, {}, s, why))
            return l->finish(key,
                             make_error(ec::storage_failed,
                                        "cluster store: a reservation that "
                                        "does not load: " + why),
                             {});
          l->claimed(key, j, session_id, s);
        },
        [l, key](caf::error& err) { l->finish(key, as_store_error(err), {}); });
  }

  void release(lobby_state& lobby, const std::string& bot_name,
               const std::string& nick,
               const std::string& session_id) const override {
    caf::anon_send(claims_, atom::leave_v, lobby.value.id, bot_name, nick,
                   session_id);
  }

  store_change
  join_change(const std::string& lobby_id,
              const std::shared_ptr<const lobby_image::member>& m) const override {
    return claimed_join_change(lobby_id, m);
  }

  store_change leave_change(const std::string& lobby_id,
                            const session& s) const override {
    auto change = vb::leave_change(lobby_id, s.session_id);
    change.claims.push_back(
      store_claim{lobby_id, s.bot_name, s.nick, s.session_id, nullptr});
    return change;
  }

private:
  claims_actor claims_;
};

class local_line_port final : public line_port {
public:
  void chatted(const std::string&, const std::string&,
               const std::string&) const override {
  }
  void said(const std::string&, const std::string&, const std::string&,
            const std::string&) const override {
  }
  void seated(const voice_seat&) const override {
  }
};

class relayed_line_port final : public line_port {
public:
  explicit relayed_line_port(line_relay_actor relay) : relay_(std::move(relay)) {
  }
  void chatted(const std::string& lobby_id, const std::string& nick,
               const std::string& text) const override {
    caf::anon_send(relay_, atom::chat_v, lobby_id, nick, text);
  }
  void said(const std::string& lobby_id, const std::string& session_id,
            const std::string& text,
            const std::string& provider_id) const override {
    caf::anon_send(relay_, atom::say_v, lobby_id, session_id, text,
                   provider_id);
  }
  void seated(const voice_seat& seat) const override {
    caf::anon_send(relay_, atom::seats_v, seat);
  }

private:
  line_relay_actor relay_;
};

class local_duty_port final : public duty_port {
public:
  bool on_duty() const override {
    return true;
  }
};

/// The cleanup sweeper's election decides, so that no new election is
/// needed: the sweeper's lease fences its writes the same way.
class sweeper_duty_port final : public duty_port {
public:
  explicit sweeper_duty_port(std::shared_ptr<const server_stats> stats)
    : stats_(std::move(stats)) {
  }
  bool on_duty() const override {
    return stats_->sweeper.load(std::memory_order_relaxed);
  }

private:
  std::shared_ptr<const server_stats> stats_;
};

} // namespace

std::shared_ptr<const duty_port> local_duty() {
  static const auto port = std::make_shared<const local_duty_port>();
  return port;
}

std::shared_ptr<const duty_port>
sweeper_duty(std::shared_ptr<const server_stats> stats) {
  return std::make_shared<const sweeper_duty_port>(std::move(stats));
}

std::shared_ptr<const claim_port> local_claims() {
  static const auto port = std::make_shared<const local_claim_port>();
  return port;
}

std::shared_ptr<const claim_port> reserved_claims(claims_actor claims) {
  return std::make_shared<const reserved_claim_port>(std::move(claims));
}

std::shared_ptr<const line_port> local_lines() {
  static const auto port = std::make_shared<const local_line_port>();
  return port;
}

std::shared_ptr<const line_port> relayed_lines(line_relay_actor relay) {
  return std::make_shared<const relayed_line_port>(std::move(relay));
}

} // namespace vb
