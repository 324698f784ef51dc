// The message vocabulary of voicebot-server: atoms, error codes, and the
// serialization of model types. Every program that talks to the server's
// actors (the server itself, voicebot-provider, the tests) includes this one
// header, so type ids agree on both ends of a CAF connection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>
#include <caf/type_id.hpp>

#include "link/http_link.hpp"
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
VB_ADD_ATOM(join, "join")
VB_ADD_ATOM(stop, "stop")
VB_ADD_ATOM(probe, "probe")
VB_ADD_ATOM(done, "done")
VB_ADD_ATOM(create, "create")
VB_ADD_ATOM(add, "add")
VB_ADD_ATOM(remove, "remove")
VB_ADD_ATOM(leave, "leave")
VB_ADD_ATOM(persist, "persist")
VB_ADD_ATOM(status, "status")
VB_ADD_ATOM(seen, "seen")
VB_ADD_ATOM(event, "event")
VB_ADD_ATOM(say, "say")
VB_ADD_ATOM(reconcile, "reconcile")
VB_ADD_ATOM(subscribe, "subscribe")
VB_ADD_ATOM(chat, "chat")
VB_ADD_ATOM(compact, "compact")

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
  /// HTTP providers send no heartbeats: the sweep probes them first.
  transport via = transport::http;
  std::string base_url;
};

/// The registry's answer to a cleanup sweep's question.
struct stale_report {
  uint64_t total = 0;               // providers registered
  std::vector<stale_entry> entries; // those unseen for at least stale_after
};

/// A bot to bring into a lobby (POST /api/bots/{bot_name}/join).
struct bot_join {
  std::string bot_name;
  std::string nick;
  std::string provider_id; // empty: any provider of the bot
};

/// What the server tells a provider when a bot joins a lobby.
struct dispatch_request {
  std::string bot_name;
  std::string lobby_id;
  std::string session_id;
  std::string nick;
};

/// A bot running at a CAF provider for one lobby membership; a provider
/// lists its runs when it registers (SPEC §3, reconciliation).
struct bot_run {
  std::string run_id;
  std::string bot_name;
  std::string lobby_id;
  std::string session_id; // the bot's member session in the lobby
  std::string nick;
};

/// The server's answer to a CAF provider's registration: its id, and the
/// runs it listed that no lobby knows (the provider stops them).
struct registration_result {
  std::string provider_id;
  std::vector<std::string> unknown_runs;
};

/// Something that happened in a lobby, as subscribers (web pages over the
/// WebSocket) and the lobby's bots see it. `type` is "member_joined",
/// "member_left" or "chat"; `member` is who joined, left or spoke.
struct lobby_event {
  std::string type;
  std::string lobby_id;
  session member;
  std::string text; // chat only
  double at = 0;    // unix seconds
};

/// A lobby as its actor last published it, for the directory's listings and
/// snapshots. Sessions are shared and immutable, so a new image copies
/// pointers, not members. Local only.
struct lobby_image {
  /// A member, shared and immutable (the store's image holds its JSON).
  struct member {
    session value;
  };
  std::string id;
  std::string name;
  bool is_private = false;
  double created_at = 0;
  std::vector<std::shared_ptr<const member>> sessions;
};
using lobby_image_ptr = std::shared_ptr<const lobby_image>;

/// One change of a lobby's members, from the lobby to its directory (which
/// keeps the listing and the snapshot): O(1), whatever the lobby's size.
struct member_change {
  std::string lobby_id;
  std::shared_ptr<const lobby_image::member> added; // or null
  std::string removed;                              // a session id, or empty
};

/// The answer to a lobby creation: the lobby and whether it is new.
struct lobby_created {
  lobby value;
  bool created = false;
};

/// All providers at one version of the registry, shared without copying;
/// the front end caches what it renders from it by version. Local only.
struct provider_catalog {
  uint64_t version = 0;
  std::vector<provider> providers; // by registration order
};
using provider_catalog_ptr = std::shared_ptr<const provider_catalog>;

/// A snapshot to write: rendered on the writer's thread, so the owner of
/// the state never spends time serializing. Local only.
struct snapshot_job {
  std::function<std::string()> render;
};

/// One entry of a store's image (what its next snapshot holds): a rendered
/// item, or a bot member rendered when the snapshot is written (shared with
/// its lobby, never copied), under a parent (a member under its lobby;
/// empty for a top-level item: a provider, a lobby). Immutable and shared.
struct image_entry {
  std::string id; // parent, '\x1f', key
  size_t split = 0; // where the key starts in `id`
  std::shared_ptr<const std::string> json;
  std::shared_ptr<const session> member;

  std::string_view parent() const {
    return std::string_view{id}.substr(0, split == 0 ? 0 : split - 1);
  }
  std::string_view key() const {
    return std::string_view{id}.substr(split);
  }
};
using image_entry_ptr = std::shared_ptr<const image_entry>;

/// What one change does to a store's image: an entry set (json or member
/// not null) or removed (both null).
struct image_op {
  std::string parent;
  std::string key;
  std::shared_ptr<const std::string> json;
  std::shared_ptr<const session> member = nullptr;
};

/// One change for a store (SPEC §3): its journal record, and what it does to
/// the image the next compaction writes. Local only.
struct store_change {
  std::string record;
  std::vector<image_op> ops;
};

/// Changes made durable together, all or none. Local only.
using store_batch = std::vector<store_change>;

/// A shared, immutable provider as the registry holds it: handed out by
/// resolve instead of copies. Local only.
using provider_ptr = std::shared_ptr<const provider>;
using provider_list = std::vector<provider_ptr>;

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
typename Inspector::result_type inspect(Inspector& f, lobby_create& x) {
  return f(caf::meta::type_name("vb::lobby_create"), x.name, x.is_private);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, leave_request& x) {
  return f(caf::meta::type_name("vb::leave_request"), x.session_id,
           x.lobby_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stale_entry& x) {
  return f(caf::meta::type_name("vb::stale_entry"), x.provider_id, x.unseen,
           x.via, x.base_url);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stale_report& x) {
  return f(caf::meta::type_name("vb::stale_report"), x.total, x.entries);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bot_join& x) {
  return f(caf::meta::type_name("vb::bot_join"), x.bot_name, x.nick,
           x.provider_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dispatch_request& x) {
  return f(caf::meta::type_name("vb::dispatch_request"), x.bot_name,
           x.lobby_id, x.session_id, x.nick);
}

/// The answer of an outbound HTTP call (link/http_link.hpp), local only:
/// from the link's thread to the dispatcher.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_result& x) {
  return f(caf::meta::type_name("vb::http_result"), x.status, x.body, x.error,
           x.timed_out);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bot_run& x) {
  return f(caf::meta::type_name("vb::bot_run"), x.run_id, x.bot_name,
           x.lobby_id, x.session_id, x.nick);
}

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, registration_result& x) {
  return f(caf::meta::type_name("vb::registration_result"), x.provider_id,
           x.unknown_runs);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lobby_event& x) {
  return f(caf::meta::type_name("vb::lobby_event"), x.type, x.lobby_id,
           x.member, x.text, x.at);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lobby_created& x) {
  return f(caf::meta::type_name("vb::lobby_created"), x.value, x.created);
}

} // namespace vb

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::snapshot_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::provider_catalog_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::member_change)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::store_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::provider_list)

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
  CAF_ADD_TYPE_ID(vb_model, (vb::provider_status))
  CAF_ADD_TYPE_ID(vb_model, (vb::lobby_create))
  CAF_ADD_TYPE_ID(vb_model, (vb::leave_request))
  CAF_ADD_TYPE_ID(vb_model, (vb::bot_join))
  CAF_ADD_TYPE_ID(vb_model, (vb::dispatch_request))
  // Local only; at this position since the first version, so that the wire
  // ids after it do not move.
  CAF_ADD_TYPE_ID(vb_model, (vb::http_result))
  CAF_ADD_TYPE_ID(vb_model, (vb::lobby_created))
  CAF_ADD_TYPE_ID(vb_model, (vb::bot_run))
  CAF_ADD_TYPE_ID(vb_model, (std::vector<vb::bot_run>))
  CAF_ADD_TYPE_ID(vb_model, (vb::registration_result))
  CAF_ADD_TYPE_ID(vb_model, (vb::lobby_event))
CAF_END_TYPE_ID_BLOCK(vb_model)
