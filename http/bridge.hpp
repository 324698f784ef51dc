// The bridge from the Beast front end to the actors: one request to an
// actor from a short-lived actor, its answer turned into a reply. The
// caller's thread never waits. Included by http/api.cpp only (it pulls in
// CAF's actor headers).
#pragma once

#include <chrono>

#include <caf/event_based_actor.hpp>

#include "http/api.hpp"
#include "http/error_map.hpp"

namespace vb {

/// How long the front end waits for an actor before answering 504 (joins
/// wait longer: api::join_timeout_).
inline constexpr auto bridge_timeout = std::chrono::seconds(15);

/// Asks `target` (the message `xs...`) within `timeout`; `on_ok` turns the
/// answer into the reply, an error becomes error_reply's.
template <class Result, class Handle, class OnOk, class... Ts>
void ask_within(caf::timespan timeout, caf::actor_system& sys,
                const Handle& target, api_respond respond, OnOk on_ok,
                Ts... xs) {
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(target, timeout, xs...)
      .then([=](Result& r) { respond(on_ok(r)); },
            [=](caf::error& err) { respond(error_reply(err)); });
  });
}

/// ask_within the bridge's timeout.
template <class Result, class Handle, class OnOk, class... Ts>
void ask(caf::actor_system& sys, const Handle& target, api_respond respond,
         OnOk on_ok, Ts... xs) {
  ask_within<Result>(bridge_timeout, sys, target, std::move(respond),
                     std::move(on_ok), std::move(xs)...);
}

} // namespace vb
