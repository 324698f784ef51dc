// The map from an actor's error to the HTTP answer (SPEC §2, §3, §7): one
// place for every status and `code` an actor's refusal becomes.
#pragma once

#include <caf/error.hpp>

#include "http/api.hpp"

namespace vb {

/// The reply for an actor's error: 404, 401/403, 410, 422, 429 (with
/// Retry-After), 502, 503 (with Retry-After), 504, or 500 for anything
/// unexpected.
api_reply error_reply(const caf::error& err);

} // namespace vb
