// A deterministic CAF actor system for Catch2 tests: the test coordinator
// runs messages only when the test says so, and time moves only when the test
// advances the clock.
#pragma once

#include <chrono>
#include <string>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/interfaces.hpp"
#include "tests/temp_dir.hpp"

namespace vb::test {

struct test_config : caf::actor_system_config {
  test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.verbosity", caf::atom("quiet"));
    vb::add_message_types(*this);
  }
};

struct fixture {
  test_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys, true};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());

  ~fixture() {
    sched.run();
  }

  /// Runs every ready message.
  void run() {
    sched.run();
  }

  /// Stops each actor (a null handle is skipped) and runs until they are done.
  template <class... Handles>
  void shut_down(const Handles&... handles) {
    for (auto a : {caf::actor_cast<caf::actor>(handles)...})
      if (a)
        self->send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  /// Moves virtual time forward and runs what became ready.
  void advance(caf::timespan d) {
    sched.clock().advance_time(d);
    sched.run();
  }

  /// Sends a request, runs the system, and returns the reply (or fails).
  template <class T, class Handle, class... Ts>
  T ask(const Handle& h, Ts&&... xs) {
    auto rh = self->request(h, caf::infinite, std::forward<Ts>(xs)...);
    sched.run();
    T result{};
    bool ok = false;
    std::string failure;
    rh.receive([&](T& x) { result = std::move(x); ok = true; },
               [&](caf::error& err) { failure = sys.render(err); });
    if (!ok)
      throw std::runtime_error("request failed: " + failure);
    return result;
  }

  /// Sends a request expected to fail, and returns the error.
  template <class T, class Handle, class... Ts>
  caf::error ask_error(const Handle& h, Ts&&... xs) {
    auto rh = self->request(h, caf::infinite, std::forward<Ts>(xs)...);
    sched.run();
    caf::error result;
    rh.receive([&](T&) {}, [&](caf::error& err) { result = std::move(err); });
    return result;
  }
};

} // namespace vb::test
