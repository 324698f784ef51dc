#include "actors/gateway.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "model/clock.hpp"
#include "model/validate.hpp"

namespace vb {

namespace {

/// The first problem of an invalid registration, as an `invalid` error.
caf::error check(const provider_registration& reg) {
  auto errors = check_provider_registration(reg);
  if (errors.empty())
    return {};
  auto& e = errors.front();
  return make_error(ec::invalid, e.loc.dump() + ": " + e.msg);
}

bool valid_id(const std::string& id) {
  return !check_id_path(id, "provider_id").has_value();
}

/// A heartbeat over CAF, by the rules of the HTTP heartbeat (SPEC §7,
/// check_heartbeat: load 0 to 1, at most 100000 run ids of 1 to 128
/// printable characters, an instance_id of 1 to 64, bots as in a
/// registration; a negative load or capacity means "not given", as in the
/// struct). Normalizes what it keeps: negatives to -1, runs and bots only
/// when given.
caf::error check(heartbeat& hb) {
  if (hb.load < 0)
    hb.load = -1;
  if (hb.capacity < 0)
    hb.capacity = -1;
  if (!hb.has_runs)
    hb.runs.clear();
  if (!hb.has_bots)
    hb.bots.clear();
  auto errors = check_heartbeat(hb);
  if (errors.empty())
    return {};
  auto& e = errors.front();
  return make_error(ec::invalid, e.loc.dump() + ": " + e.msg);
}

/// A drain's timeout in seconds: as over HTTP, more than 0 and at most
/// max_drain_timeout; a negative one means the server's drain_timeout.
caf::error check_drain_timeout(double& timeout) {
  if (timeout < 0) {
    timeout = -1;
    return {};
  }
  if (!(timeout > 0) || !(timeout <= max_drain_timeout))
    return make_error(ec::invalid,
                      "timeout: more than 0 and at most "
                        + std::to_string(static_cast<int>(max_drain_timeout))
                        + " seconds");
  return {};
}

/// Refuses a provider of another protocol version (docs/caf-providers.md,
/// "Evolution"): logged, and an error naming both versions.
caf::error refuse_version(uint32_t theirs, const std::string& who) {
  auto text = "the provider speaks CAF provider protocol version "
              + std::to_string(theirs) + ", this server speaks version "
              + std::to_string(protocol_version);
  spdlog::warn("CAF provider {} refused: {}", who, text);
  return make_error(ec::protocol_mismatch, std::move(text));
}

/// Who sent the current message, for the log.
template <class Self>
std::string sender_of(Self* self) {
  auto& src = self->current_sender();
  return src ? "from node " + caf::to_string(src->node()) : "(anonymous)";
}

} // namespace

void gateway_state::remember(const caf::actor_addr& host,
                             const std::string& id) {
  forget(id);
  by_host[host] = id;
}

void gateway_state::forget(const std::string& id) {
  for (auto i = by_host.begin(); i != by_host.end();)
    i = i->second == id ? by_host.erase(i) : std::next(i);
}

provider_gateway_actor::behavior_type
provider_gateway(provider_gateway_actor::stateful_pointer<gateway_state> self,
                 gateway_peers peers) {
  self->state.peers = std::move(peers);
  return {
    [=](atom::hello, uint32_t version) -> caf::result<uint32_t> {
      if (version != protocol_version)
        return refuse_version(version, sender_of(self));
      return protocol_version;
    },
    [=](atom::registration, uint32_t version, provider_registration reg,
        bot_host_actor host, const std::vector<bot_run>& runs)
      -> caf::result<registration_result> {
      // First, before anything else is looked at: the version. (The name
      // is logged only when it is a valid one.)
      if (version != protocol_version)
        return refuse_version(version, (check(reg) ? std::string{}
                                                   : "'" + reg.name + "' ")
                                         + sender_of(self));
      reg.via = transport::caf;
      reg.base_url.clear();
      if (auto err = check(reg))
        return err;
      if (!host)
        return make_error(ec::invalid, "registration without a provider actor");
      if (runs.size() > max_runs)
        return make_error(ec::invalid, "too many runs");
      auto since = unix_now();
      auto& p = self->state.peers;
      auto rp = self->make_response_promise<registration_result>();
      // 1. Durable in the registry; 2. its actor with the dispatcher, so
      // joins reach it; 3. its runs reconciled with the lobbies.
      self->request(p.registry, p.timeout, atom::registration_v, reg)
        .then(
          [=](std::string& id) mutable {
            auto& p = self->state.peers;
            self->request(p.dispatcher, p.timeout, atom::registration_v, id,
                          host)
              .then(
                [=](bool) mutable {
                  self->state.remember(host.address(), id);
                  auto& p = self->state.peers;
                  self->request(p.directory, p.timeout, atom::reconcile_v, id,
                                runs, since)
                    .then(
                      [=](std::vector<std::string>& unknown) mutable {
                        spdlog::info("CAF provider {} reconciled: {} runs, "
                                     "{} unknown to the lobbies",
                                     id, runs.size(), unknown.size());
                        rp.deliver(registration_result{id, std::move(unknown)});
                      },
                      [=](caf::error& err) mutable {
                        // Registered all the same; nothing is stopped.
                        spdlog::warn("CAF provider {}: reconciliation failed: "
                                     "{}",
                                     id, caf::to_string(err));
                        rp.deliver(registration_result{id, {}});
                      });
                },
                [=](caf::error& err) mutable { rp.deliver(err); });
          },
          [=](caf::error& err) mutable { rp.deliver(err); });
      return rp;
    },
    [=](atom::heartbeat, const std::string& id,
        heartbeat hb) -> caf::result<double> {
      if (!valid_id(id))
        return make_error(ec::invalid, "invalid provider_id");
      if (auto err = check(hb))
        return err;
      auto& p = self->state.peers;
      return self->delegate(p.registry, atom::heartbeat_v, id, std::move(hb));
    },
    [=](atom::drain, const std::string& id, const std::string& key,
        double timeout) -> caf::result<bool> {
      if (!valid_id(id))
        return make_error(ec::invalid, "invalid provider_id");
      if (auto err = check_drain_timeout(timeout))
        return err;
      auto& p = self->state.peers;
      auto rp = self->make_response_promise<bool>();
      // A provider draining itself: its deregistration at the end leaves no
      // tombstone (it was not removed by an operator).
      drain_request req{key, timeout, false};
      self->request(p.registry, p.timeout, atom::drain_v, id, std::move(req))
        .then(
          [=](provider& drained) mutable {
            spdlog::info("CAF provider {} draining itself", drained.provider_id);
            rp.deliver(true);
          },
          [=](caf::error& err) mutable { rp.deliver(err); });
      return rp;
    },
    [=](atom::deregister, const std::string& id,
        const std::string& key) -> caf::result<bool> {
      if (!valid_id(id))
        return make_error(ec::invalid, "invalid provider_id");
      auto& p = self->state.peers;
      auto rp = self->make_response_promise<bool>();
      // The provider leaves on its own: not removed on purpose, no
      // tombstone.
      self->request(p.registry, p.timeout, atom::deregister_v, id, key, false)
        .then(
          [=](bool ok) mutable {
            self->state.forget(id);
            self->send(self->state.peers.dispatcher, atom::deregister_v, id);
            rp.deliver(ok);
          },
          [=](caf::error& err) mutable { rp.deliver(err); });
      return rp;
    },
    [=](atom::say, const std::string& lobby_id, const std::string& session_id,
        const std::string& text) {
      constexpr size_t max_text = 4096;
      if (text.empty() || text.size() > max_text || !valid_utf8(text)
          || lobby_id.size() > max_id_length
          || session_id.size() > max_id_length)
        return;
      // Which provider is speaking: the one whose actor sent this.
      auto& by_host = self->state.by_host;
      auto i = by_host.find(caf::actor_cast<caf::actor_addr>(
        self->current_sender()));
      if (i == by_host.end())
        return; // not a registered provider's actor
      self->send(self->state.peers.directory, atom::say_v, lobby_id,
                 session_id, text, i->second);
    },
  };
}

} // namespace vb
