#include "actors/dispatcher.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/stats.hpp"
#include "link/http_link.hpp"
#include "model/provider_protocol.hpp"
#include "model/url.hpp"

namespace vb {

namespace {

/// The first bytes of a provider's answer, for error messages.
std::string excerpt(const std::string& body) {
  constexpr size_t max = 200;
  return body.size() <= max ? body : body.substr(0, max) + "...";
}

/// The error of a call that got no answer or a 5xx (503: the join fails
/// over) or another non-2xx one (502: a rejection); none for a 2xx answer.
caf::error call_error(const provider& p, const http_result& r) {
  if (!r.error.empty())
    return make_error(ec::unavailable,
                      "provider " + p.name + " unreachable: " + r.error);
  if (r.status >= 500)
    return make_error(ec::unavailable, "provider " + p.name + " answered "
                                         + std::to_string(r.status) + ": "
                                         + excerpt(r.body));
  if (r.status < 200 || r.status >= 300)
    return make_error(ec::rejected, "provider " + p.name + " answered "
                                      + std::to_string(r.status) + ": "
                                      + excerpt(r.body));
  return {};
}

/// The error of a CAF provider's answer: no answer in time or a lost link is
/// 503, a refusal is 502.
caf::error host_error(const provider& p, const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return make_error(ec::unavailable,
                      "provider " + p.name + " did not answer in time");
  if (!err || err.category() == caf::atom("system"))
    return make_error(ec::unavailable,
                      "provider " + p.name + " unreachable: "
                        + caf::to_string(err));
  // A provider that cannot take it now (draining, shutting down, full)
  // says so with `unavailable`: the join fails over, as for a 5xx.
  if (code_of(err) == ec::unavailable)
    return make_error(ec::unavailable,
                      "provider " + p.name + " cannot take it now: "
                        + caf::to_string(err));
  return make_error(ec::rejected,
                    "provider " + p.name + " refused: " + caf::to_string(err));
}

caf::error no_endpoint(const provider& p) {
  return make_error(ec::unavailable,
                    "provider " + p.name + " has no reachable endpoint");
}

} // namespace

caf::error no_link(const provider& p) {
  return make_error(ec::unavailable,
                    "provider " + p.name + " is not connected");
}

void dispatcher_state::call(std::string method, std::string url,
                            std::string body,
                            std::function<void(const http_result&)> on_reply,
                            caf::timespan limit) {
  auto id = ++next_call;
  calls.emplace(id, std::move(on_reply));
  if (!http) {
    self->send(self, atom::done_v, id,
               http_result{0, {}, "no HTTP link in this server", false});
    return;
  }
  auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
    limit.count() > 0 ? limit : config.timeout);
  auto hdl = caf::actor_cast<dispatcher_actor>(self);
  http->request(std::move(method), std::move(url), std::move(body), timeout,
                [hdl, id](http_result r) {
                  caf::anon_send(hdl, atom::done_v, id, std::move(r));
                });
}

void dispatcher_state::try_candidate(std::shared_ptr<placing> job) {
  auto p = job->candidates[job->attempt];
  join_one(p, job->req, [this, job, p](caf::expected<std::string> answer) {
    if (answer) {
      job->rp.deliver(placed{p, std::move(*answer)});
      return;
    }
    auto err = std::move(answer.error());
    auto& req = job->req;
    spdlog::warn("dispatch of {} into lobby {} via provider {} failed: {}",
                 req.bot_name, req.lobby_id, p->name, to_string(err));
    // A provider that could not be reached (refused, 5xx, timed out) is
    // followed by the next candidate; a rejection (4xx) is an answer.
    auto next = job->attempt + 1;
    if (code_of(err) == ec::unavailable && next < job->candidates.size()
        && next <= config.failover_attempts) {
      if (config.stats)
        ++config.stats->failovers;
      job->attempt = next;
      return try_candidate(job);
    }
    job->rp.deliver(std::move(err));
  });
}

void dispatcher_state::join_one(const provider_ptr& p,
                                const dispatch_request& req,
                                join_answer then) {
  if (p->via == transport::caf)
    return caf_join(p, req, false, std::move(then));
  if (p->base_url.empty())
    return then(failed(*p, no_endpoint(*p)));
  auto id = start_join(std::move(then), p);
  auto url = join_url(p->base_url,
                      "/bots/" + encode_path_segment(req.bot_name) + "/join");
  auto body = join_call_body(req.lobby_id, req.session_id, req.nick,
                             config.server_url, req.session_token);
  // Read for up to late_window: an answer after dispatch_timeout is a late
  // acceptance, stopped (the connection is not reused meanwhile).
  call(
    "POST", std::move(url), std::move(body),
    [this, id, p](const http_result& r) {
      if (auto err = call_error(*p, r))
        return join_answered(id, err);
      std::string run_id;
      std::string why;
      if (!parse_join_answer(r.body, run_id, why))
        return join_answered(
          id, make_error(ec::rejected, "provider " + p->name + ": " + why));
      join_answered(id, std::move(run_id));
    },
    config.late_window);
}

uint64_t dispatcher_state::start_join(join_answer then, provider_ptr p) {
  auto id = ++next_join;
  joins.emplace(id, join_call{std::move(then), std::move(p), false});
  deadlines.emplace_back(self->clock().now() + config.dispatch_timeout, id);
  if (!timer_armed) {
    timer_armed = true;
    self->delayed_send(self, config.dispatch_timeout, atom::expire_v,
                       uint64_t{0});
  }
  return id;
}

void dispatcher_state::expire_due() {
  timer_armed = false;
  auto now = self->clock().now();
  while (!deadlines.empty() && deadlines.front().first <= now) {
    auto id = deadlines.front().second;
    deadlines.pop_front();
    join_expired(id); // nothing when it was answered meanwhile
  }
  if (deadlines.empty())
    return;
  timer_armed = true;
  self->delayed_send(self, deadlines.front().first - now, atom::expire_v,
                     uint64_t{0});
}

void dispatcher_state::join_expired(uint64_t id) {
  auto i = joins.find(id);
  if (i == joins.end() || i->second.expired)
    return;
  auto& c = i->second;
  c.expired = true;
  auto& p = *c.target;
  auto secs = std::chrono::duration<double>(config.dispatch_timeout).count();
  spdlog::warn("provider {} did not accept a join within {:.3g} s", p.name,
               secs);
  // (A failover may start a join: the map's nodes, and `c`, stay put.)
  c.then(failed(p, make_error(ec::unavailable,
                              "provider " + p.name + " did not answer in time")));
}

void dispatcher_state::join_answered(uint64_t id,
                                     caf::expected<std::string> answer) {
  auto i = joins.find(id);
  if (i == joins.end())
    return;
  auto c = std::move(i->second);
  joins.erase(i);
  if (!c.expired) {
    if (answer) {
      seen(c.target->provider_id);
      c.then(std::move(*answer));
    } else {
      c.then(failed(*c.target, std::move(answer.error())));
    }
    return;
  }
  // The client was answered 503 already and the provider gets no member:
  // an acceptance after the timeout is stopped (SPEC §7).
  if (!answer)
    return;
  spdlog::warn("provider {} accepted a join after its dispatch timeout: run "
               "{} is stopped",
               c.target->name, *answer);
  if (config.stats)
    ++config.stats->late_acceptances;
  self->request(caf::actor_cast<dispatcher_actor>(self), config.late_window,
                atom::stop_v, *c.target, *answer)
    .then([](bool) {},
          [run = *answer](caf::error& err) {
            spdlog::warn("stop of late run {} failed: {}", run,
                         to_string(err));
          });
}

void dispatcher_state::seen(const std::string& provider_id) {
  if (config.registry)
    self->send(config.registry, atom::seen_v, provider_id);
}

void dispatcher_state::unreachable(const std::string& provider_id) {
  if (config.registry)
    self->send(config.registry, atom::status_v, provider_id,
               provider_status::unreachable);
}

caf::error dispatcher_state::failed(const provider& p, caf::error err) {
  if (code_of(err) == ec::unavailable)
    unreachable(p.provider_id);
  return err;
}

bot_host_actor dispatcher_state::host_of(const provider& p) const {
  auto i = hosts.find(p.provider_id);
  return i == hosts.end() ? bot_host_actor{} : i->second;
}

void dispatcher_state::let_go() {
  // Each provider's link drops (its down_msg follows, and link_down does
  // what a drop does); the providers move to their next gateway at once.
  std::vector<caf::node_id> nodes;
  for (auto& [id, host] : hosts)
    if (std::find(nodes.begin(), nodes.end(), host.node()) == nodes.end())
      nodes.push_back(host.node());
  spdlog::warn("fenced: letting the {} CAF providers linked here go",
               hosts.size());
  if (config.close_links && !nodes.empty())
    config.close_links(std::move(nodes));
}

void dispatcher_state::link_down(const caf::actor_addr& addr,
                                 const caf::error& reason) {
  for (auto i = hosts.begin(); i != hosts.end(); ++i) {
    if (i->second.address() != addr)
      continue;
    auto id = i->first;
    hosts.erase(i);
    spdlog::info("provider {} link down: {}", id, caf::to_string(reason));
    config.elsewhere->unlinked(id);
    unreachable(id);
    // Joins sent over the link just before it went down get no answer:
    // they fail now (and may fail over), not at their dispatch timeout. An
    // answer that still comes is a late acceptance, stopped as such.
    // (Collected first: a failover adds joins to the map.)
    std::vector<uint64_t> cut;
    for (auto& [jid, c] : joins)
      if (!c.expired && c.target->provider_id == id)
        cut.push_back(jid);
    for (auto jid : cut) {
      auto& c = joins.at(jid);
      c.expired = true;
      c.then(no_link(*c.target));
    }
    return;
  }
}

void dispatcher_state::caf_join(const provider_ptr& p,
                                const dispatch_request& req, bool forwarded,
                                join_answer then) {
  auto host = host_of(*p);
  if (!host && forwarded)
    return then(no_link(*p)); // moved on: the caller re-reads the table
  if (!host)
    return config.elsewhere->join(*this, p, req, std::move(then));
  auto id = start_join(std::move(then), p);
  auto call = req;
  call.server_url = config.server_url;
  self->request(host, config.late_window, atom::join_v, std::move(call))
    .then(
      [this, id](std::string& run_id) { join_answered(id, std::move(run_id)); },
      [this, id, p](caf::error& err) {
        join_answered(id, host_error(*p, err));
      });
}

caf::result<bool> dispatcher_state::caf_stop(const provider& p,
                                             const std::string& run_id,
                                             bool forwarded) {
  auto host = host_of(p);
  if (!host && forwarded)
    return no_link(p);
  if (!host)
    return config.elsewhere->stop(*this, p, run_id);
  auto rp = self->make_response_promise<bool>();
  self->request(host, config.timeout, atom::stop_v, run_id)
    .then([rp](bool had) mutable { rp.deliver(had); },
          [this, rp, p](caf::error& err) mutable {
            rp.deliver(failed(p, host_error(p, err)));
          });
  return rp;
}

dispatcher_actor::behavior_type
dispatcher(dispatcher_actor::stateful_pointer<dispatcher_state> self,
           std::shared_ptr<http_link> http, dispatcher_config config) {
  self->state.self = self;
  self->state.http = std::move(http);
  self->state.config = std::move(config);
  self->set_down_handler([=](const caf::down_msg& msg) {
    self->state.link_down(msg.source, msg.reason);
  });
  return {
      [=](atom::join, const provider_list& candidates,
          const dispatch_request& req) -> caf::result<placed> {
        if (candidates.empty())
          return make_error(ec::unavailable, "no provider of " + req.bot_name
                                               + " takes joins now");
        auto job = std::make_shared<dispatcher_state::placing>(
          dispatcher_state::placing{self->make_response_promise<placed>(),
                                    candidates, req, 0});
        self->state.try_candidate(job);
        return job->rp;
      },
      [=](atom::expire, uint64_t) { self->state.expire_due(); },
      [=](atom::stop, const provider& p,
          const std::string& run_id) -> caf::result<bool> {
        auto& st = self->state;
        if (p.via == transport::caf)
          return st.caf_stop(p, run_id, false);
        if (p.base_url.empty())
          return st.failed(p, no_endpoint(p));
        auto rp = self->make_response_promise<bool>();
        auto url = join_url(
            p.base_url, "/bots/runs/" + encode_path_segment(run_id) + "/stop");
        st.call("POST", std::move(url), "{}",
                [self, rp, p](const http_result& r) mutable {
                  if (auto err = call_error(p, r)) {
                    rp.deliver(self->state.failed(p, err));
                    return;
                  }
                  rp.deliver(true);
                });
        return rp;
      },
      [=](atom::join, const provider& p, const dispatch_request& req,
          atom::remote) -> caf::result<std::string> {
        auto rp = self->make_response_promise<std::string>();
        self->state.caf_join(std::make_shared<const provider>(p), req, true,
                             [rp](caf::expected<std::string> answer) mutable {
                               if (answer)
                                 rp.deliver(std::move(*answer));
                               else
                                 rp.deliver(std::move(answer.error()));
                             });
        return rp;
      },
      [=](atom::stop, const provider& p, const std::string& run_id,
          atom::remote) -> caf::result<bool> {
        return self->state.caf_stop(p, run_id, true);
      },
      [=](atom::probe, const provider& p) -> caf::result<bool> {
        // CAF providers: whether their link is up (link_down reports it),
        // here or, in cluster mode, on any instance.
        if (p.via == transport::caf) {
          auto& st = self->state;
          if (st.hosts.count(p.provider_id) != 0)
            return true;
          return st.config.elsewhere->probe(st, p);
        }
        if (p.base_url.empty())
          return false;
        auto rp = self->make_response_promise<bool>();
        self->state.call("GET", join_url(p.base_url, "/bots"), "",
                         [self, rp, id = p.provider_id](
                             const http_result& r) mutable {
                           // Any answer at all means the provider is there.
                           if (r.answered())
                             self->state.seen(id);
                           else
                             self->state.unreachable(id);
                           rp.deliver(r.answered());
                         });
        return rp;
      },
      [=](atom::done, uint64_t id, const http_result& reply) {
        auto& calls = self->state.calls;
        auto i = calls.find(id);
        if (i == calls.end())
          return;
        auto on_reply = std::move(i->second);
        calls.erase(i);
        on_reply(reply);
      },
      [=](atom::event, const std::string& provider_id,
          const std::string& run_id, const lobby_event& ev) {
        // HTTP providers get no lobby events.
        auto& hosts = self->state.hosts;
        if (auto i = hosts.find(provider_id); i != hosts.end())
          self->send(i->second, atom::event_v, run_id, ev);
      },
      [=](atom::registration, const std::string& id,
          bot_host_actor host) -> bool {
        auto& hosts = self->state.hosts;
        if (auto i = hosts.find(id); i != hosts.end()) {
          if (i->second == host)
            return true;
          self->demonitor(i->second.address());
        }
        self->monitor(host);
        hosts[id] = std::move(host);
        self->state.config.elsewhere->linked(id);
        return true;
      },
      [=](atom::deregister, const std::string& id) {
        auto& hosts = self->state.hosts;
        if (auto i = hosts.find(id); i != hosts.end()) {
          self->demonitor(i->second.address());
          hosts.erase(i);
          self->state.config.elsewhere->unlinked(id);
        }
      },
      [=](atom::fenced) { self->state.let_go(); },
  };
}

} // namespace vb
