// The message vocabulary of voicebot-server: atoms, error codes, and the
// serialization of model types. Every program that talks to the server's
// actors (the server itself, voicebot-provider, the tests) includes this one
// header, so type ids agree on both ends of a CAF connection.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>
#include <caf/type_id.hpp>

#include "model/types.hpp"

// -- atoms --------------------------------------------------------------------

#define VB_ADD_ATOM(name, text) CAF_ADD_ATOM(vb_atoms, vb::atom, name, text)

VB_ADD_ATOM(registration, "register")
VB_ADD_ATOM(heartbeat, "heartbeat")
VB_ADD_ATOM(deregister, "deregistr")
VB_ADD_ATOM(get, "get")
VB_ADD_ATOM(list, "list")
VB_ADD_ATOM(resolve, "resolve")
VB_ADD_ATOM(stale, "stale")
VB_ADD_ATOM(evict, "evict")
VB_ADD_ATOM(flush, "flush")
VB_ADD_ATOM(write, "write")
VB_ADD_ATOM(sweep, "sweep")
VB_ADD_ATOM(count, "count")

namespace vb {

// -- error codes --------------------------------------------------------------

/// Errors of voicebot-server's actors; the HTTP layer maps them to statuses.
enum class ec : uint8_t {
  none = 0,
  not_found,        // 404: unknown provider, bot or lobby
  key_missing,      // 401: keys are configured and none was given
  key_invalid,      // 403: the given key is not configured
  storage_failed,   // 503: a snapshot could not be written
  unavailable,      // 503: the provider cannot be reached now
  rejected,         // 502: the provider refused
  invalid,          // 422: a request the actors refused as invalid
};

const char* to_string(ec x);

/// The error category atom of `ec`.
inline caf::atom_value ec_category() {
  return caf::atom("vb");
}

inline caf::error make_error(ec x) {
  return {static_cast<uint8_t>(x), ec_category()};
}

template <class... Ts>
caf::error make_error(ec x, Ts&&... xs) {
  return {static_cast<uint8_t>(x), ec_category(),
          caf::make_message(std::forward<Ts>(xs)...)};
}

/// The `ec` of an error of our category, or `ec::none`.
inline ec code_of(const caf::error& e) {
  return e.category() == ec_category() ? static_cast<ec>(e.code()) : ec::none;
}

// -- messages that are not model types ---------------------------------------

/// One provider the cleanup actor may evict: unseen for `unseen`.
struct stale_entry {
  std::string provider_id;
  caf::timespan unseen{0};
};

/// The registry's answer to a cleanup sweep's question.
struct stale_report {
  uint64_t total = 0;               // providers registered
  std::vector<stale_entry> entries; // those unseen for at least stale_after
};

/// A snapshot to write: rendered on the writer's thread, so the owner of
/// the state never spends time serializing. Local only.
struct snapshot_job {
  std::function<std::string()> render;
};

// -- serialization (CAF 0.17 inspect) -----------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bot_info& x) {
  return f(caf::meta::type_name("vb::bot_info"), x.name, x.description);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider& x) {
  return f(caf::meta::type_name("vb::provider"), x.provider_id, x.name,
           x.base_url, x.description, x.via, x.bots, x.registered_at,
           x.last_seen, x.status);
}

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, provider_registration& x) {
  return f(caf::meta::type_name("vb::provider_registration"), x.name,
           x.base_url, x.description, x.provider_key, x.provider_id, x.bots,
           x.via);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, heartbeat& x) {
  return f(caf::meta::type_name("vb::heartbeat"), x.has_bots, x.bots);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session& x) {
  return f(caf::meta::type_name("vb::session"), x.session_id, x.nick,
           x.is_bot, x.bot_name, x.provider_id, x.run_id, x.joined_at);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lobby& x) {
  return f(caf::meta::type_name("vb::lobby"), x.id, x.name, x.is_private,
           x.created_at, x.sessions);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stale_entry& x) {
  return f(caf::meta::type_name("vb::stale_entry"), x.provider_id, x.unseen);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stale_report& x) {
  return f(caf::meta::type_name("vb::stale_report"), x.total, x.entries);
}

} // namespace vb

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::snapshot_job)

// -- type ids -----------------------------------------------------------------

CAF_BEGIN_TYPE_ID_BLOCK(vb_model, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(vb_model, (std::vector<std::string>))
  CAF_ADD_TYPE_ID(vb_model, (vb::bot_info))
  CAF_ADD_TYPE_ID(vb_model, (std::vector<vb::bot_info>))
  CAF_ADD_TYPE_ID(vb_model, (vb::provider))
  CAF_ADD_TYPE_ID(vb_model, (std::vector<vb::provider>))
  CAF_ADD_TYPE_ID(vb_model, (vb::provider_registration))
  CAF_ADD_TYPE_ID(vb_model, (vb::heartbeat))
  CAF_ADD_TYPE_ID(vb_model, (vb::session))
  CAF_ADD_TYPE_ID(vb_model, (std::vector<vb::session>))
  CAF_ADD_TYPE_ID(vb_model, (vb::lobby))
  CAF_ADD_TYPE_ID(vb_model, (std::vector<vb::lobby>))
  CAF_ADD_TYPE_ID(vb_model, (vb::stale_entry))
  CAF_ADD_TYPE_ID(vb_model, (std::vector<vb::stale_entry>))
  CAF_ADD_TYPE_ID(vb_model, (vb::stale_report))
CAF_END_TYPE_ID_BLOCK(vb_model)
