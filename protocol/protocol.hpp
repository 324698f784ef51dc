// The CAF provider protocol (SPEC §4, docs/caf-providers.md): everything that
// crosses the connection between voicebot-server's provider gateway and a CAF
// bot provider, and nothing else. voicebot-provider and any other C++
// provider compile against this header alone; the server's local vocabulary
// (actors/messages.hpp, actors/interfaces.hpp) builds on it and never
// changes it.
//
// Evolution rule (docs/caf-providers.md, "Evolution"): what crosses is the
// atoms' text, the type names of the type-ID block below, the fields of the
// inspect() functions in their order, the two interfaces' signatures and the
// values of `ec`. Changing any of them bumps `protocol_version`. Ids are
// assigned in the block at the end of this file, which comes first (from
// caf::first_custom_type_id): append only, never reorder or remove.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/type_id.hpp>
#include <caf/typed_actor.hpp>

#include "model/types.hpp"

namespace vb {

/// The version of this protocol. A provider says it first (`hello`) and
/// again in its registration; the gateway refuses any other version with
/// `ec::protocol_mismatch`.
constexpr uint32_t protocol_version = 3;

} // namespace vb

// -- atoms on the wire ----------------------------------------------------------

// An atom is its text (at most 10 characters): the text crosses the wire,
// so it never changes. The server's local atoms are in actors/messages.hpp.
#define VB_ADD_WIRE_ATOM(name, text)                                           \
  CAF_ADD_ATOM(vb_protocol, vb::atom, name, text)

VB_ADD_WIRE_ATOM(hello, "hello")
VB_ADD_WIRE_ATOM(registration, "register")
VB_ADD_WIRE_ATOM(heartbeat, "heartbeat")
VB_ADD_WIRE_ATOM(deregister, "deregistr")
VB_ADD_WIRE_ATOM(say, "say")
VB_ADD_WIRE_ATOM(join, "join")
VB_ADD_WIRE_ATOM(stop, "stop")
VB_ADD_WIRE_ATOM(event, "event")
VB_ADD_WIRE_ATOM(drain, "drain")

namespace vb {

// -- error codes ------------------------------------------------------------------

/// Errors of voicebot-server's actors (category `vb`); the HTTP layer maps
/// them to statuses. Their values cross the wire in the gateway's answers
/// and in a provider's refusals: append only.
enum class ec : uint8_t {
  none = 0,
  not_found,         // 404: unknown provider, bot or lobby
  key_missing,       // 401: keys are configured and none was given
  key_invalid,       // 403: the given key is not configured
  storage_failed,    // 503: a snapshot could not be written
  unavailable,       // 503: the provider cannot be reached now
  rejected,          // 502: the provider refused
  invalid,           // 422: a request the actors refused as invalid
  protocol_mismatch, // a CAF provider of another protocol version
  // -- version 2 --
  removed,                // 410: the provider was removed on purpose
  rate_limited,           // 429: too many registrations; context: (detail,
                          // retry_after seconds as a double)
  idempotency_key_reused, // 422: an Idempotency-Key with another body
  full,                   // 409: max_lobbies or max_members_per_lobby is
                          // reached (context: detail)
  // -- voice (SPEC §9), on the lobby WebSocket only --
  bad_token,  // a hello with an unknown session or a wrong token
  voice_full, // a hello past max_voice_peers
  // -- frontend access tokens (docs/security.md), on the lobby WebSocket --
  access_required, // a person's hello without an access token
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

/// The `ec` of an error of our category, or `ec::none`. A none error has
/// no category (CAF 0.17 reads through a null pointer for it): a peer can
/// send one as its refusal (found by fuzz/caf_messages).
inline ec code_of(const caf::error& e) {
  return e && e.category() == ec_category() ? static_cast<ec>(e.code())
                                            : ec::none;
}

// -- wire types -------------------------------------------------------------------

// Also on the wire, from model/types.hpp: bot_info, provider_registration
// (with its transport), session. Their fields cross as the inspect()
// functions below list them, not as the structs declare them.

/// What the server tells a provider when a bot joins a lobby.
struct dispatch_request {
  std::string bot_name;
  std::string lobby_id;
  std::string session_id;
  std::string nick;
  /// The run's session token (SPEC §9): the bot's voice says hello with it.
  /// On the CAF wire since protocol 3; in an HTTP provider's join body.
  std::string session_token;
  /// Where the bot's voice signals: the server's base URL, whose
  /// `/ws/lobby/{lobby_id}` it opens (the join body's `server_url`).
  std::string server_url;
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

/// What happened in a lobby. Its text (`to_string`) is what the WebSocket's
/// JSON and the CAF wire carry.
enum class lobby_event_type : uint8_t {
  member_joined,
  member_left,
  chat,
  /// A bot member runs elsewhere now: `member` has its new provider_id and
  /// run_id.
  member_moved,
  /// A bot member lost its provider and none could take it:
  /// `member.orphaned`.
  member_orphaned,
};

const char* to_string(lobby_event_type x);
/// The type of a text; false for a text no type has.
bool from_string(const std::string& text, lobby_event_type& x);

/// Something that happened in a lobby, as subscribers (web pages over the
/// WebSocket) and the lobby's bots see it; `member` is who joined, left,
/// spoke or moved.
struct lobby_event {
  lobby_event_type type = lobby_event_type::chat;
  std::string lobby_id;
  session member;
  std::string text; // chat only
  double at = 0;    // unix seconds
};

// -- serialization (CAF 0.17 inspect): field order is the wire format ---------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bot_info& x) {
  return f(caf::meta::type_name("vb::bot_info"), x.name, x.description);
}

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, provider_registration& x) {
  return f(caf::meta::type_name("vb::provider_registration"), x.name,
           x.base_url, x.description, x.provider_key, x.provider_id, x.bots,
           x.via, x.instance_id, x.heartbeat_interval);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, heartbeat& x) {
  return f(caf::meta::type_name("vb::heartbeat"), x.has_bots, x.bots,
           x.instance_id, x.load, x.capacity, x.has_runs, x.runs);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, session& x) {
  return f(caf::meta::type_name("vb::session"), x.session_id, x.nick,
           x.is_bot, x.bot_name, x.provider_id, x.run_id, x.joined_at,
           x.orphaned, x.moved_at);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dispatch_request& x) {
  return f(caf::meta::type_name("vb::dispatch_request"), x.bot_name,
           x.lobby_id, x.session_id, x.nick, x.session_token, x.server_url);
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
  // The type crosses the wire as its text, as in protocol 2's first
  // providers.
  std::string type = to_string(x.type);
  auto load = [&]() -> caf::error {
    if (!from_string(type, x.type))
      return make_error(ec::invalid, "unknown lobby event type: " + type);
    return caf::none;
  };
  return f(caf::meta::type_name("vb::lobby_event"), type,
           caf::meta::load_callback(load), x.lobby_id, x.member, x.text, x.at);
}

// -- the two interfaces -------------------------------------------------------------

/// A CAF bot provider (voicebot-provider, or any program that speaks this
/// protocol): the server sends it joins, stops and lobby events.
using bot_host_actor = caf::typed_actor<
  // Start a bot in a lobby; answers the run id.
  caf::replies_to<atom::join, dispatch_request>::with<std::string>,
  // Stop a run; answers whether the provider had it.
  caf::replies_to<atom::stop, std::string>::with<bool>,
  // Something happened in the lobby of a run (run id, event).
  caf::reacts_to<atom::event, std::string, lobby_event>>;

/// The provider gateway the server publishes on --caf-host/--caf-port.
using provider_gateway_actor = caf::typed_actor<
  // The provider's protocol version; answers the server's, or
  // protocol_mismatch. Frozen: this signature is the same in every version,
  // so that any provider can ask any server before it sends anything else.
  caf::replies_to<atom::hello, uint32_t>::with<uint32_t>,
  // Register (again, when the id is given) with the protocol version, the
  // provider's own handle and the runs it has; answered once durable and
  // reconciled. Another version is refused (protocol_mismatch).
  caf::replies_to<atom::registration, uint32_t, provider_registration,
                  bot_host_actor, std::vector<bot_run>>::with<registration_result>,
  // The provider is alive (id, what it reports: load, capacity, runs,
  // instance); answers last_seen, or not_found, or removed (its instance
  // was removed on purpose: it must not come back).
  caf::replies_to<atom::heartbeat, std::string, heartbeat>::with<double>,
  // The provider drains itself (id, key, timeout in seconds; negative: the
  // server's default): no new joins, its runs stay until they end or the
  // timeout passes; then it is deregistered.
  caf::replies_to<atom::drain, std::string, std::string, double>::with<bool>,
  // Leave for good (id, key); answered once durable.
  caf::replies_to<atom::deregister, std::string, std::string>::with<bool>,
  // A bot says something in its lobby (lobby id, bot session id, text).
  caf::reacts_to<atom::say, std::string, std::string, std::string>>;

/// Registers the protocol's types and the `vb` error category with a CAF
/// config: all a provider needs (the server adds its local types on top).
void add_protocol_types(caf::actor_system_config& cfg);

} // namespace vb

// -- type ids: the wire block, first ------------------------------------------------

// The names written here are the names CAF 0.17 puts on the wire (and what
// a typed handle's interface check compares); from CAF 0.18 on the ids are
// on the wire instead. Both stay put: append at the end, never reorder,
// rename or remove. tests/test_protocol.cpp pins ids and names.
CAF_BEGIN_TYPE_ID_BLOCK(vb_protocol, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(vb_protocol, (vb::bot_info))                   // 200
  CAF_ADD_TYPE_ID(vb_protocol, (std::vector<vb::bot_info>))      // 201
  CAF_ADD_TYPE_ID(vb_protocol, (vb::provider_registration))      // 202
  CAF_ADD_TYPE_ID(vb_protocol, (vb::session))                    // 203
  CAF_ADD_TYPE_ID(vb_protocol, (vb::dispatch_request))           // 204
  CAF_ADD_TYPE_ID(vb_protocol, (vb::bot_run))                    // 205
  CAF_ADD_TYPE_ID(vb_protocol, (std::vector<vb::bot_run>))       // 206
  CAF_ADD_TYPE_ID(vb_protocol, (vb::registration_result))        // 207
  CAF_ADD_TYPE_ID(vb_protocol, (vb::lobby_event))                // 208
  CAF_ADD_TYPE_ID(vb_protocol, (vb::bot_host_actor))             // 209
  CAF_ADD_TYPE_ID(vb_protocol, (vb::provider_gateway_actor))     // 210
  // -- version 2 --
  CAF_ADD_TYPE_ID(vb_protocol, (vb::heartbeat))                  // 211
CAF_END_TYPE_ID_BLOCK(vb_protocol)

static_assert(caf::id_block::vb_protocol::begin == caf::first_custom_type_id,
              "the wire block comes first");
static_assert(caf::type_id<vb::provider_gateway_actor>::value == 210,
              "wire type ids are append only (docs/caf-providers.md)");
