// A dispatcher for the actor tests that mocks only what a test looks at:
// the handlers it is given (joins, stops and probes of HTTP providers), and
// the messages about CAF providers answered as if none were connected.
#pragma once

#include <string>
#include <utility>

#include <caf/all.hpp>
#include <catch2/catch.hpp>

#include "actors/interfaces.hpp"

namespace vb::test {

template <class... Handlers>
dispatcher_actor::behavior_type mock_dispatcher_of(Handlers... handlers) {
  return {
    std::move(handlers)...,
    [](atom::registration, const std::string&, bot_host_actor) {
      return true;
    },
    [](atom::deregister, const std::string&) {},
    [](atom::join, const provider&, const dispatch_request&,
       atom::remote) -> caf::result<std::string> {
      return make_error(ec::unavailable);
    },
    [](atom::stop, const provider&, const std::string&, atom::remote) {
      return false;
    },
    // Only cluster mode's membership sends it: no actor test expects it.
    [](atom::fenced) { FAIL("the mock dispatcher got fenced"); },
  };
}

} // namespace vb::test
