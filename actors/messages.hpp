// The local message vocabulary of voicebot-server: the atoms, messages and
// serialization of model types that travel only between the server's own
// actors. What crosses the CAF connection to providers is the protocol
// (protocol/protocol.hpp), included here; nothing in this file is on the
// wire, so it may change freely, and its type ids come after the wire
// block's.
#pragma once

#ifdef VB_WIRE_ONLY
#error "a CAF provider compiles against protocol/protocol.hpp only, not the server's local vocabulary"
#endif

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <string>
#include <string_view>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/type_id.hpp>

#include "link/http_link.hpp"
#include "model/types.hpp"
#include "protocol/protocol.hpp"

// -- local atoms ----------------------------------------------------------------

// Local atoms; the wire's (join, stop, event, register, ...) are in
// protocol/protocol.hpp and used locally too. One text, one atom: a local
// atom never reuses a wire atom's text.
#define VB_ADD_ATOM(name, text) CAF_ADD_ATOM(vb_local, vb::atom, name, text)

VB_ADD_ATOM(get, "get")
VB_ADD_ATOM(list, "list")
VB_ADD_ATOM(resolve, "resolve")
VB_ADD_ATOM(stale, "stale")
VB_ADD_ATOM(evict, "evict")
VB_ADD_ATOM(flush, "flush")
VB_ADD_ATOM(write, "write")
VB_ADD_ATOM(sweep, "sweep")
VB_ADD_ATOM(count, "count")
VB_ADD_ATOM(probe, "probe")
VB_ADD_ATOM(done, "done")
VB_ADD_ATOM(create, "create")
VB_ADD_ATOM(add, "add")
VB_ADD_ATOM(remove, "remove")
VB_ADD_ATOM(leave, "leave")
VB_ADD_ATOM(persist, "persist")
VB_ADD_ATOM(status, "status")
VB_ADD_ATOM(seen, "seen")
VB_ADD_ATOM(reconcile, "reconcile")
VB_ADD_ATOM(subscribe, "subscribe")
VB_ADD_ATOM(chat, "chat")
VB_ADD_ATOM(compact, "compact")
VB_ADD_ATOM(redispatch, "redispatch")
VB_ADD_ATOM(lost, "lost")
VB_ADD_ATOM(orphans, "orphans")
VB_ADD_ATOM(runs, "runs")
VB_ADD_ATOM(suspect, "suspect")
VB_ADD_ATOM(expire, "expire")
VB_ADD_ATOM(peers, "peers")
VB_ADD_ATOM(remote, "remote")
VB_ADD_ATOM(reserve, "reserve")
VB_ADD_ATOM(place, "place")
VB_ADD_ATOM(voice, "voice")
VB_ADD_ATOM(idle, "idle")
VB_ADD_ATOM(signal, "signal")
VB_ADD_ATOM(seats, "seats")
VB_ADD_ATOM(grace, "grace")
VB_ADD_ATOM(fenced, "fenced")

namespace vb {

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
  /// A person has been a member (durable: the lobby's header).
  bool had_people = false;
  std::vector<std::shared_ptr<const member>> sessions;
};
using lobby_image_ptr = std::shared_ptr<const lobby_image>;

/// One change of a lobby's members, from the lobby to its directory (which
/// keeps the listing and the snapshot): O(1), whatever the lobby's size.
/// `removed` is applied first: a member that moved is removed and added
/// again under the same session id.
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

/// The public lobbies at one version of the directory (bumped by every
/// change a listing shows), shared like the catalog; the front end caches
/// what it renders by version. Local only.
struct lobby_listing {
  uint64_t version = 0;
  std::vector<lobby> lobbies; // by creation order
};
using lobby_listing_ptr = std::shared_ptr<const lobby_listing>;

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
  /// An update of an entry that must still be there (a member's new run, a
  /// mark): in cluster mode the commit fails if another instance removed it
  /// meanwhile, so a member that left is never written back. The embedded
  /// store has one writer and does not need it.
  bool existing = false;
};

/// Cluster mode only (SPEC §8): the name a bot member holds in its lobby,
/// (lobby, bot, nick), so that two instances never commit two members of
/// one name. A join's change commits the reservation its lobby made before
/// dispatching (`session` set: the member's session JSON, the commit fails
/// unless the reservation is still this session's); a leave's change
/// releases it (`session` null). The embedded store ignores claims: a
/// lobby's own map is the rule there.
struct store_claim {
  std::string lobby_id;
  std::string bot_name;
  std::string nick;
  std::string session_id;
  std::shared_ptr<const std::string> session;
};

/// One change for a store (SPEC §3): its journal record, and what it does to
/// the image the next compaction writes. Local only.
struct store_change {
  std::string record;
  std::vector<image_op> ops;
  std::vector<store_claim> claims = {};
};

/// Changes made durable together, all or none. Local only.
using store_batch = std::vector<store_change>;

/// A change another instance made to an owner's state (cluster mode, SPEC
/// §8), as the cluster store's watch saw it: one entry of the owner's image
/// (the same parent and key as its image_op) set to `json` (the entry's
/// snapshot JSON: a provider, a lobby, a member, an idempotency key) or
/// removed (null). The owner applies it without writing it again. Local
/// only.
struct remote_change {
  std::string parent;
  std::string key;
  std::shared_ptr<const std::string> json;
};

/// Remote changes in etcd's revision order. `resync` set: the batch is the
/// owner's whole state (after a compaction or a lost watch): every entry not
/// in it is gone.
struct remote_batch {
  std::vector<remote_change> changes;
  bool resync = false;
};

/// A shared, immutable provider as the registry holds it: handed out by
/// resolve instead of copies. Local only.
using provider_ptr = std::shared_ptr<const provider>;
using provider_list = std::vector<provider_ptr>;

/// Where a join may go (SPEC §7, placement): the candidates in the order
/// they are tried, and whether any provider offers the bot at all (false:
/// 404; true with no candidates: 503). Local only.
struct placement {
  provider_list candidates;
  bool known = false;
};

/// A join placed and dispatched (SPEC §7): the provider that accepted it,
/// shared as the registry holds it, and the run id it answered. Local only.
struct placed {
  provider_ptr provider;
  std::string run_id;
};

/// A person's new session and its token (SPEC §9): the token is shown once,
/// in the answer to POST /api/lobby/{id}/sessions; the lobby keeps only its
/// hash.
struct person_session {
  session value;
  std::string token;
};

/// A socket's hello (SPEC §9): it speaks for `session_id` from now on.
struct voice_hello {
  std::string session_id;
  std::string token;
  /// The page still holds its peer connections (its socket dropped).
  bool resume = false;
  /// A person's session may speak: access control is off, or the hello
  /// came with a frontend access token for this lobby (docs/security.md).
  /// A bot member's run needs none: its session token is its credential.
  bool person_allowed = true;
};

/// The answer to a hello: the other voice peers (the socket adds the ICE
/// servers).
struct voice_welcome {
  std::string session_id;
  std::vector<voice_peer> peers;
};

/// The sockets of a lobby's voice peers by session id (null: offline now),
/// which every voice socket holds to send a signal straight to its peer's
/// socket, without the lobby. Shared, immutable: a new table per change.
/// Local only.
struct voice_table {
  std::unordered_map<std::string, caf::strong_actor_ptr> sockets;
};
using voice_table_ptr = std::shared_ptr<const voice_table>;

/// Cluster mode (SPEC §9): where a voice peer's socket is, for the other
/// instances' lobbies, so that their sockets signal it straight over the
/// cluster port. `online`: `socket` speaks for the session now; else that
/// socket no longer does. `renewed`: a hello without resume of a peer
/// already known (its peers drop their connections to it).
struct voice_seat {
  std::string lobby_id;
  std::string session_id;
  caf::strong_actor_ptr socket;
  bool online = false;
  bool renewed = false;
};

/// Why a bot member is dispatched again (SPEC §7, re-dispatch).
enum class move_reason : uint8_t {
  evicted,    // its provider was evicted by the cleanup rule
  removed,    // its provider was deregistered (DELETE, or it left)
  drained,    // its provider's drain timed out
  lost,       // its provider's heartbeat no longer lists its run
  reconciled, // its provider registered again without its run
  orphan,     // it had no provider; one of its bot can take it now
};

const char* to_string(move_reason x);

/// Why a member left, when the lobby's events say it (`member_left`'s
/// "reason"). Local only: the CAF wire's lobby_event carries no reason.
enum class leave_reason : uint8_t {
  asked,       // a leave, a DELETE, an idle timeout: no reason is shown
  empty_lobby, // a bot stopped after the lobby's people left (the grace)
};

const char* to_string(leave_reason x);

// -- serialization of local types (CAF 0.17 inspect) -------------------------

/// inspect() of a plain struct: its fields in order, named vb::TYPE (the
/// cluster's messages use it too).
#define VB_INSPECT(type, ...)                                                  \
  template <class Inspector>                                                   \
  typename Inspector::result_type inspect(Inspector& f, type& x) {             \
    return f(caf::meta::type_name("vb::" #type), __VA_ARGS__);                 \
  }

VB_INSPECT(provider, x.provider_id, x.name, x.base_url, x.description, x.via,
           x.bots, x.registered_at, x.last_seen, x.status, x.instance_id,
           x.heartbeat_interval, x.load, x.capacity, x.active_runs,
           x.lease_expires_at, x.drain_deadline, x.drain_by_operator)
VB_INSPECT(drain_request, x.provider_key, x.timeout, x.by_operator)
VB_INSPECT(lobby, x.id, x.name, x.is_private, x.created_at, x.sessions)
VB_INSPECT(lobby_create, x.name, x.is_private)
VB_INSPECT(leave_request, x.session_id, x.lobby_id)
VB_INSPECT(stale_entry, x.provider_id, x.unseen, x.via, x.base_url)
VB_INSPECT(stale_report, x.total, x.entries)
VB_INSPECT(bot_join, x.bot_name, x.nick, x.provider_id)

/// The answer of an outbound HTTP call (link/http_link.hpp), local only:
/// from the link's thread to the dispatcher.
VB_INSPECT(http_result, x.status, x.body, x.error, x.timed_out)
VB_INSPECT(lobby_created, x.value, x.created)
VB_INSPECT(person_session, x.value, x.token)
VB_INSPECT(voice_peer, x.session_id, x.nick, x.is_bot, x.bot_name)
VB_INSPECT(voice_hello, x.session_id, x.token, x.resume,
           x.person_allowed)
VB_INSPECT(voice_seat, x.lobby_id, x.session_id, x.socket, x.online,
           x.renewed)
VB_INSPECT(voice_welcome, x.session_id, x.peers)

} // namespace vb

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::snapshot_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::provider_catalog_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::lobby_listing_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::member_change)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::store_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::remote_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::provider_list)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::placement)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::placed)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::voice_table_ptr)

// -- type ids -----------------------------------------------------------------

// Local types only, after the wire block: adding, removing or reordering one
// moves no wire id.
CAF_BEGIN_TYPE_ID_BLOCK(vb_local, caf::id_block::vb_protocol::end)
  CAF_ADD_TYPE_ID(vb_local, (std::vector<std::string>))
  CAF_ADD_TYPE_ID(vb_local, (vb::provider))
  CAF_ADD_TYPE_ID(vb_local, (std::vector<vb::provider>))
  CAF_ADD_TYPE_ID(vb_local, (std::vector<vb::session>))
  CAF_ADD_TYPE_ID(vb_local, (vb::lobby))
  CAF_ADD_TYPE_ID(vb_local, (std::vector<vb::lobby>))
  CAF_ADD_TYPE_ID(vb_local, (vb::stale_entry))
  CAF_ADD_TYPE_ID(vb_local, (std::vector<vb::stale_entry>))
  CAF_ADD_TYPE_ID(vb_local, (vb::stale_report))
  CAF_ADD_TYPE_ID(vb_local, (vb::provider_status))
  CAF_ADD_TYPE_ID(vb_local, (vb::lobby_create))
  CAF_ADD_TYPE_ID(vb_local, (vb::leave_request))
  CAF_ADD_TYPE_ID(vb_local, (vb::bot_join))
  CAF_ADD_TYPE_ID(vb_local, (vb::http_result))
  CAF_ADD_TYPE_ID(vb_local, (vb::lobby_created))
  CAF_ADD_TYPE_ID(vb_local, (vb::placement))
  CAF_ADD_TYPE_ID(vb_local, (vb::move_reason))
  CAF_ADD_TYPE_ID(vb_local, (vb::drain_request))
  CAF_ADD_TYPE_ID(vb_local, (vb::placed))
  CAF_ADD_TYPE_ID(vb_local, (vb::person_session))
  CAF_ADD_TYPE_ID(vb_local, (vb::voice_peer))
  CAF_ADD_TYPE_ID(vb_local, (std::vector<vb::voice_peer>))
  CAF_ADD_TYPE_ID(vb_local, (vb::voice_hello))
  CAF_ADD_TYPE_ID(vb_local, (vb::voice_welcome))
  CAF_ADD_TYPE_ID(vb_local, (vb::voice_table_ptr))
  CAF_ADD_TYPE_ID(vb_local, (vb::voice_seat))
  CAF_ADD_TYPE_ID(vb_local, (vb::leave_reason))
CAF_END_TYPE_ID_BLOCK(vb_local)
