// The map from an actor's error, or a refused request, to the HTTP answer
// (SPEC §2, §3, §7): one place for every status and `code` a refusal
// becomes.
#pragma once

#include <caf/error.hpp>

#include "http/api.hpp"

namespace vb {

/// The reply for an actor's error: 404, 401/403, 410, 422, 429 (with
/// Retry-After), 502, 503 (with Retry-After), 504, or 500 for anything
/// unexpected.
api_reply error_reply(const caf::error& err);

struct request_error;
struct field_error;

/// The reply for a request refused before any actor saw it: 422 with the
/// field errors, or 400 for malformed JSON (model/validate.hpp).
api_reply error_reply(const request_error& err);

/// 422 for one refused field (a path parameter, a header).
api_reply error_reply(field_error err);

/// 429 {"code": "rate_limited"} with Retry-After: `wait` seconds rounded
/// up, at least 1 (registrations, SPEC §7; per-client quotas).
api_reply rate_limited_reply(std::string_view detail, double wait);

} // namespace vb
