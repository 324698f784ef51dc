// etcd's user/password authentication: one token for every call, asked for
// once by however many calls wait, and again when etcd says it is invalid.
#include <utility>

#include <spdlog/spdlog.h>

#include "etcd/client_impl.hpp"

namespace vb::etcd {

namespace {

/// Whether etcd refused the name or the password (not a passing fault).
bool refused_credentials(const etcd_error& e) {
  return e.kind == errc::server
         && (e.code == grpc::invalid_argument
             || e.code == grpc::permission_denied
             || e.code == grpc::failed_precondition);
}

} // namespace

void etcd_client::impl::with_token(token_wait then) {
  if (options.user.empty() || !auth->token.empty())
    return then({});
  auth->waits.push_back(std::move(then));
  if (auth->asking)
    return;
  auth->asking = true;
  json body{{"name", options.user}, {"password", options.password}};
  // The answer may come as the client goes (client_stopped): it holds the
  // token state, never the client.
  call(
    "/v3/auth/authenticate", body.dump(),
    clock_type::now() + options.attempt_timeout * 2,
    once([state = auth, user = options.user](reply r) {
      state->asking = false;
      etcd_error error = r.error;
      if (!error) {
        auto t = r.body.find("token");
        if (t != r.body.end() && t->is_string() && !t->get<std::string>().empty())
          state->token = t->get<std::string>();
        else
          error = {errc::bad_answer, 0, 0, "no token in etcd's answer"};
      } else if (refused_credentials(error)) {
        error = {errc::refused, error.code, error.http_status,
                 "etcd refused user '" + user + "': " + error.message};
      }
      if (error && error.kind != errc::client_stopped)
        spdlog::warn("etcd client: authentication: {}", error.message);
      auto waits = std::exchange(state->waits, {});
      for (auto& w : waits)
        guarded(w, error);
    }),
    true, true);
}

void etcd_client::impl::forget_token(const std::string& used) {
  if (!used.empty() && auth->token == used) {
    spdlog::info("etcd client: etcd says the auth token is invalid; asking "
                 "for a new one");
    auth->token.clear();
  }
}

} // namespace vb::etcd
