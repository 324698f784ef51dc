#include "actors/dispatcher.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

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

/// The error of a call that got no answer (503) or a non-2xx one (502);
/// none for a 2xx answer.
caf::error call_error(const provider& p, const http_result& r) {
  if (!r.error.empty())
    return make_error(ec::unavailable,
                      "provider " + p.name + " unreachable: " + r.error);
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
  if (err.category() == caf::atom("system"))
    return make_error(ec::unavailable,
                      "provider " + p.name + " unreachable: "
                        + caf::to_string(err));
  return make_error(ec::rejected,
                    "provider " + p.name + " refused: " + caf::to_string(err));
}

caf::error no_link(const provider& p) {
  return make_error(ec::unavailable,
                    "provider " + p.name + " is not connected");
}

caf::error no_endpoint(const provider& p) {
  return make_error(ec::unavailable,
                    "provider " + p.name + " has no reachable endpoint");
}

} // namespace

void dispatcher_state::call(std::string method, std::string url,
                            std::string body,
                            std::function<void(const http_result&)> on_reply) {
  auto id = ++next_call;
  calls.emplace(id, std::move(on_reply));
  if (!http) {
    self->send(self, atom::done_v, id,
               http_result{0, {}, "no HTTP link in this server", false});
    return;
  }
  auto timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout);
  auto hdl = caf::actor_cast<dispatcher_actor>(self);
  http->request(std::move(method), std::move(url), std::move(body), timeout,
                [hdl, id](http_result r) {
                  caf::anon_send(hdl, atom::done_v, id, std::move(r));
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

void dispatcher_state::link_down(const caf::actor_addr& addr,
                                 const caf::error& reason) {
  for (auto i = hosts.begin(); i != hosts.end(); ++i) {
    if (i->second.address() != addr)
      continue;
    auto id = i->first;
    hosts.erase(i);
    spdlog::info("provider {} link down: {}", id, caf::to_string(reason));
    unreachable(id);
    return;
  }
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
      [=](atom::join, const provider& p,
          const dispatch_request& req) -> caf::result<std::string> {
        auto& st = self->state;
        if (p.via == transport::caf) {
          auto host = st.host_of(p);
          if (!host)
            return st.failed(p, no_link(p));
          auto rp = self->make_response_promise<std::string>();
          self->request(host, st.config.timeout, atom::join_v, req)
            .then(
              [self, rp, id = p.provider_id](std::string& run_id) mutable {
                self->state.seen(id);
                rp.deliver(run_id);
              },
              [self, rp, p](caf::error& err) mutable {
                rp.deliver(self->state.failed(p, host_error(p, err)));
              });
          return rp;
        }
        if (p.base_url.empty())
          return st.failed(p, no_endpoint(p));
        auto rp = self->make_response_promise<std::string>();
        auto url = join_url(
            p.base_url, "/bots/" + encode_path_segment(req.bot_name) + "/join");
        auto body = join_call_body(req.lobby_id, req.session_id, req.nick,
                                   st.config.server_url);
        st.call("POST", std::move(url), std::move(body),
                [self, rp, p](const http_result& r) mutable {
                  if (auto err = call_error(p, r)) {
                    rp.deliver(self->state.failed(p, err));
                    return;
                  }
                  std::string run_id;
                  std::string why;
                  if (!parse_join_answer(r.body, run_id, why)) {
                    rp.deliver(make_error(ec::rejected,
                                          "provider " + p.name + ": " + why));
                    return;
                  }
                  self->state.seen(p.provider_id);
                  rp.deliver(std::move(run_id));
                });
        return rp;
      },
      [=](atom::stop, const provider& p,
          const std::string& run_id) -> caf::result<bool> {
        auto& st = self->state;
        if (p.via == transport::caf) {
          auto host = st.host_of(p);
          if (!host)
            return st.failed(p, no_link(p));
          auto rp = self->make_response_promise<bool>();
          self->request(host, st.config.timeout, atom::stop_v, run_id)
            .then([rp](bool had) mutable { rp.deliver(had); },
                  [self, rp, p](caf::error& err) mutable {
                    rp.deliver(self->state.failed(p, host_error(p, err)));
                  });
          return rp;
        }
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
      [=](atom::probe, const provider& p) -> caf::result<bool> {
        // CAF providers: whether their link is up (link_down reports it).
        if (p.via == transport::caf)
          return self->state.hosts.count(p.provider_id) != 0;
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
      [=](atom::event, const provider& p, const std::string& run_id,
          const lobby_event& ev) {
        // HTTP providers get no lobby events.
        if (auto host = self->state.host_of(p))
          self->send(host, atom::event_v, run_id, ev);
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
        return true;
      },
      [=](atom::deregister, const std::string& id) {
        auto& hosts = self->state.hosts;
        if (auto i = hosts.find(id); i != hosts.end()) {
          self->demonitor(i->second.address());
          hosts.erase(i);
        }
      },
  };
}

} // namespace vb
