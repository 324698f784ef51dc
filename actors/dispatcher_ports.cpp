// The dispatcher's port to CAF providers linked elsewhere (actors/ports.hpp),
// embedded and cluster.
#include <caf/all.hpp>

#include "actors/dispatcher.hpp"

namespace vb {

namespace {

/// Embedded: every link is here; a provider not linked here has none.
class local_link_port final : public link_port {
public:
  void linked(const std::string&) const override {
  }
  void unlinked(const std::string&) const override {
  }
  void join(dispatcher_state& st, const provider_ptr& p,
            const dispatch_request&, join_answer then) const override {
    then(st.failed(*p, no_link(*p)));
  }
  caf::result<bool> stop(dispatcher_state& st, const provider& p,
                         const std::string&) const override {
    return st.failed(p, no_link(p));
  }
  caf::result<bool> probe(dispatcher_state&, const provider&) const override {
    return false;
  }
};

/// Cluster: the link table (cluster/links) names the relay of the instance
/// holding the link, which takes the call; its dispatcher keeps the
/// dispatch timeout and stops a late acceptance.
class cluster_link_port final : public link_port {
public:
  explicit cluster_link_port(provider_links_actor links)
    : links_(std::move(links)) {
  }

  void linked(const std::string& provider_id) const override {
    caf::anon_send(links_, atom::registration_v, provider_id);
  }

  void unlinked(const std::string& provider_id) const override {
    caf::anon_send(links_, atom::deregister_v, provider_id);
  }

  void join(dispatcher_state& st, const provider_ptr& p,
            const dispatch_request& req, join_answer then) const override {
    auto wait = st.config.dispatch_timeout + std::chrono::seconds(2);
    auto* self = st.self;
    auto* state = &st;
    self->request(links_, st.config.timeout, atom::resolve_v, p->provider_id)
      .then(
        [self, p, req, wait, then](cluster_relay_actor& relay) {
          self->request(relay, wait, atom::join_v, p->provider_id, req)
            .then([then](std::string& run_id) { then(std::move(run_id)); },
                  [then, p](caf::error& err) {
                    then(err == caf::sec::request_timeout ? no_link(*p)
                                                          : std::move(err));
                  });
        },
        [state, p, then](caf::error&) { then(state->failed(*p, no_link(*p))); });
  }

  caf::result<bool> stop(dispatcher_state& st, const provider& p,
                         const std::string& run_id) const override {
    auto rp = st.self->make_response_promise<bool>();
    auto wait = st.config.timeout + std::chrono::seconds(1);
    auto* self = st.self;
    auto* state = &st;
    self->request(links_, st.config.timeout, atom::resolve_v, p.provider_id)
      .then(
        [self, rp, p, run_id, wait](cluster_relay_actor& relay) mutable {
          self->request(relay, wait, atom::stop_v, p.provider_id, run_id)
            .then([rp](bool had) mutable { rp.deliver(had); },
                  [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        },
        [state, rp, p](caf::error&) mutable {
          rp.deliver(state->failed(p, no_link(p)));
        });
    return rp;
  }

  caf::result<bool> probe(dispatcher_state& st,
                          const provider& p) const override {
    auto rp = st.self->make_response_promise<bool>();
    st.self->request(links_, st.config.timeout, atom::probe_v, p.provider_id)
      .then([rp](bool linked) mutable { rp.deliver(linked); },
            [rp](caf::error&) mutable { rp.deliver(false); });
    return rp;
  }

private:
  provider_links_actor links_;
};

} // namespace

std::shared_ptr<const link_port> local_links() {
  static const auto port = std::make_shared<const local_link_port>();
  return port;
}

std::shared_ptr<const link_port> remote_links(provider_links_actor links) {
  return std::make_shared<const cluster_link_port>(std::move(links));
}

} // namespace vb
