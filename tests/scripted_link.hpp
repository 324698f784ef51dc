// A test double of the provider link (link/http_link.hpp): answers each HTTP
// call at once from a script and records it. The answer reaches the
// dispatcher as its usual `done` message, so the test coordinator runs it
// like any other: the real dispatcher runs on the deterministic scheduler
// without sockets or threads.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "link/http_link.hpp"

namespace vb::test {

/// An HTTP answer with this status and body.
inline http_result answer(int status, std::string body = "{}") {
  return http_result{status, std::move(body), {}, false};
}

/// A join accepted with this run id.
inline http_result accepted(const std::string& run_id) {
  return answer(200, R"({"status":"started","run_id":")" + run_id + "\"}");
}

/// No answer: "connection refused", "timeout", ...
inline http_result no_answer(std::string why = "connection refused") {
  bool timed_out = why == "timeout";
  return http_result{0, {}, std::move(why), timed_out};
}

struct scripted_link : http_link {
  struct call {
    std::string method;
    std::string url;
    std::string body;
    std::chrono::milliseconds timeout;
  };

  /// Every call, in order.
  std::vector<call> calls;
  /// The answer to a call; by default every call is answered 200 `{}`.
  std::function<http_result(const call&)> script = [](const call&) {
    return answer(200);
  };

  /// Calls left unanswered until the test answers them (a provider slow to
  /// answer): those `hold` picks; by default none.
  std::function<bool(const call&)> hold = [](const call&) { return false; };
  struct held_call {
    call what;
    callback done;
  };
  /// The calls held so far, in order; an answered one keeps its place with
  /// an empty callback.
  std::vector<held_call> held;

  void request(std::string method, std::string url, std::string body,
               std::chrono::milliseconds timeout, callback done) override {
    calls.push_back({std::move(method), std::move(url), std::move(body),
                     timeout});
    if (hold(calls.back())) {
      held.push_back({calls.back(), std::move(done)});
      return;
    }
    done(script(calls.back()));
  }

  /// Answers the `i`-th held call (late, as a slow provider would).
  void release(std::size_t i, http_result r) {
    auto done = std::move(held.at(i).done);
    held.at(i).done = nullptr;
    if (done)
      done(std::move(r));
  }

  /// The calls whose URL contains `part`.
  std::size_t count(const std::string& part) const {
    std::size_t n = 0;
    for (auto& c : calls)
      if (c.url.find(part) != std::string::npos)
        ++n;
    return n;
  }
};

} // namespace vb::test
