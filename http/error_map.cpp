#include "http/error_map.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>

#include <caf/message.hpp>
#include <caf/sec.hpp>
#include <nlohmann/json.hpp>

#include "model/validate.hpp"

namespace vb {

using json = nlohmann::json;

namespace {

/// "Bot not found" -> "bot_not_found".
std::string code_from(std::string_view detail) {
  std::string code;
  for (auto c : detail) {
    if (c >= 'A' && c <= 'Z')
      code += static_cast<char>(c - 'A' + 'a');
    else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
      code += c;
    else if (!code.empty() && code.back() != '_')
      code += '_';
  }
  return code;
}

/// The text attached to an error of ours, if any.
std::string context_text(const caf::error& err) {
  if (!err)
    return {}; // a none error has no context to read (CAF 0.17)
  auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return {};
}

api_reply unavailable(std::string detail, std::string code) {
  auto r = api::error(503, detail, code);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

} // namespace

api_reply error_reply(const caf::error& err) {
  auto text = context_text(err);
  switch (code_of(err)) {
    case ec::not_found: {
      auto detail = text.empty() ? std::string{"Not Found"} : text;
      return api::error(404, detail, code_from(detail));
    }
    case ec::key_missing:
      return api::error(401, "Provider key required", "provider_key_missing");
    case ec::key_invalid:
      return api::error(403, "Invalid provider key", "provider_key_invalid");
    case ec::storage_failed:
      // Cluster mode names the store that refused (etcd, SPEC §8).
      if (text.rfind("cluster store", 0) == 0)
        return unavailable("The change could not be committed: " + text,
                           "store_unavailable");
      return unavailable("The change could not be written to disk",
                         "storage_failed");
    case ec::unavailable:
      return unavailable("Bot provider unavailable"
                           + (text.empty() ? std::string{} : ": " + text),
                         "provider_unavailable");
    case ec::rejected:
      return api::error(502,
                        "Bot provider rejected the request"
                          + (text.empty() ? std::string{} : ": " + text),
                        "provider_rejected");
    case ec::invalid:
      return api::error(422, text.empty() ? "Invalid request" : text,
                        "invalid");
    case ec::removed: {
      auto r = api::error(410, "Provider was removed", "removed");
      return r;
    }
    case ec::rate_limited: {
      // The context: (detail, seconds until a registration is admitted).
      double wait = 1;
      auto& ctx = err.context();
      if (ctx.size() == 2 && ctx.match_element<double>(1))
        wait = ctx.get_as<double>(1);
      return rate_limited_reply("Too many registrations, retry later", wait);
    }
    case ec::idempotency_key_reused: {
      // A 422 in FastAPI's validation shape, like every 422 here, with its
      // own code (SPEC §7).
      request_error e;
      e.status = 422;
      e.code = "idempotency_key_reused";
      field_error f;
      f.loc = json{"header", "idempotency-key"};
      f.msg = text.empty() ? "Idempotency-Key was used with another request"
                           : text;
      f.type = "value_error.idempotency_key_reused";
      e.errors.push_back(std::move(f));
      return api_reply{422, render(e), {}, nullptr, {}};
    }
    case ec::full: {
      auto detail = text.empty() ? std::string{"Limit reached"} : text;
      return api::error(409, detail, code_from(detail));
    }
    case ec::protocol_mismatch: // only between the gateway and a provider
    case ec::bad_token:         // only on the lobby WebSocket
    case ec::voice_full:
    case ec::access_required:
    case ec::none:
      break;
  }
  if (err == caf::sec::request_timeout)
    return api::error(504, "Timed out", "timeout");
  return api::error(500, "Internal error", "internal_error");
}

api_reply rate_limited_reply(std::string_view detail, double wait) {
  auto r = api::error(429, detail, "rate_limited");
  auto seconds = std::isfinite(wait) ? std::ceil(wait) : 1.0;
  r.headers.emplace_back(
    "Retry-After",
    std::to_string(std::max<long long>(1, static_cast<long long>(seconds))));
  return r;
}

api_reply error_reply(const request_error& err) {
  return api_reply{static_cast<unsigned>(err.status), render(err), {}, nullptr, {}};
}

api_reply error_reply(field_error err) {
  request_error e;
  e.status = 422;
  e.code = "validation_error";
  e.errors.push_back(std::move(err));
  return error_reply(e);
}

} // namespace vb
