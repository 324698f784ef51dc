// The typed interfaces of voicebot-server's own actors, in one place. Each
// handler has a one-line comment; the factories live in one header per actor.
// None of them crosses the wire: the provider protocol's interfaces are in
// protocol/protocol.hpp.
#pragma once

#ifdef VB_WIRE_ONLY
#error "a CAF provider compiles against protocol/protocol.hpp only, not the server's local interfaces"
#endif

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"

namespace vb {

/// Writes one snapshot file durably. Jobs are rendered and written in the
/// order they arrive; the reply is the generation number written.
using snapshot_writer_actor = caf::typed_actor<
  // Render the job and write it durably (temp file, fsync, rename, fsync dir).
  caf::replies_to<atom::write, snapshot_job>::with<uint64_t>>;

/// The durable store of one owner's state (SPEC §3), the seam between an
/// owner and where its changes live: the embedded journal store
/// (actors/journal_store) appends them to a journal and compacts it into a
/// snapshot; the actor tests use a double that can fail; a cluster store
/// would commit each batch to etcd in one transaction. An owner applies a
/// change to its state only once the store answered that it is durable.
using store_actor = caf::typed_actor<
  // Make a batch durable, all or none; answers the sequence number of its
  // last record.
  caf::replies_to<atom::write, store_batch>::with<uint64_t>,
  // Changes that need no answer (heartbeats): durable with the next append.
  caf::reacts_to<atom::write, store_batch, atom::sweep>,
  // Everything sent before is durable; answers the last sequence number.
  caf::replies_to<atom::flush>::with<uint64_t>,
  // Write what was collected (the group commit's self-message).
  caf::reacts_to<atom::flush, atom::sweep>,
  // Write a snapshot of everything durable now and start a new journal
  // (the final snapshot at shutdown); answers its sequence number.
  caf::replies_to<atom::compact>::with<uint64_t>,
  // Stop once what was queued before this message is written.
  caf::reacts_to<atom::stop>>;

// The CAF provider protocol's two interfaces, bot_host_actor and
// provider_gateway_actor, are in protocol/protocol.hpp (included through
// actors/messages.hpp).

/// Calls bot providers on behalf of lobbies and cleanup: the HTTP protocol
/// of the original voicebot (through link/), CAF providers as messages, with
/// timeouts; never blocks. The one actor that reports provider health to the
/// registry, from each call's outcome (actors/dispatcher.hpp).
using dispatcher_actor = caf::typed_actor<
  // Run a bot in a lobby on the first of the candidates (the registry's
  // placement order) that accepts within dispatch_timeout, failing over to
  // at most failover_attempts more (SPEC §7); answers the provider and its
  // run id, else the last error (a late acceptance is told to stop).
  caf::replies_to<atom::join, provider_list, dispatch_request>::with<placed>,
  // Cluster mode: the same for a join another instance forwarded (over its
  // relay): only a link held here, never forwarded again.
  caf::replies_to<atom::join, provider, dispatch_request, atom::remote>::with<
    std::string>,
  // Timer: the dispatch timeout of the oldest join calls passed.
  caf::reacts_to<atom::expire, uint64_t>,
  // Tell the provider to stop a run.
  caf::replies_to<atom::stop, provider, std::string>::with<bool>,
  // Cluster mode: the same, forwarded by another instance.
  caf::replies_to<atom::stop, provider, std::string, atom::remote>::with<bool>,
  // Is the provider answering at all (GET {base_url}/bots)?
  caf::replies_to<atom::probe, provider>::with<bool>,
  // An outbound call finished (sent by the HTTP link's thread).
  caf::reacts_to<atom::done, uint64_t, http_result>,
  // Tell a bot run about an event in its lobby (provider id, run id, event;
  // CAF providers linked here only).
  caf::reacts_to<atom::event, std::string, std::string, lobby_event>,
  // A CAF provider's actor (provider id, handle): monitored; when its link
  // drops, the registry marks the provider unreachable.
  caf::replies_to<atom::registration, std::string, bot_host_actor>::with<bool>,
  // Forget a CAF provider's actor (it deregistered).
  caf::reacts_to<atom::deregister, std::string>,
  // Cluster mode: this instance lost its lease; every CAF provider linked
  // here is let go at once (its link closed), to register elsewhere.
  caf::reacts_to<atom::fenced>>;

/// Cluster mode: an owner of state (registry, lobby directory, lobby,
/// idempotency) takes the changes another instance made, from its store's
/// watch: applied without writing them again. Written once, added to each
/// owner's interface with extend_with.
using remote_owner_actor = caf::typed_actor<
  // Changes another instance committed (or, with `resync`, everything).
  caf::reacts_to<atom::remote, remote_batch>>;

/// A live view of one lobby (one WebSocket connection): the lobby sends it
/// its members once, then every event, and never waits for it.
using lobby_subscriber_actor = caf::typed_actor<
  // Subscribed: the lobby with its members as of now.
  caf::reacts_to<atom::subscribe, lobby>,
  // Something happened in the lobby.
  caf::reacts_to<atom::event, lobby_event>,
  // A member left, and why (member_left with its "reason").
  caf::reacts_to<atom::event, lobby_event, leave_reason>,
  // Voice (SPEC §9), once its socket speaks for a peer: the lobby's voice
  // sockets now, to relay signals straight to them.
  caf::reacts_to<atom::peers, voice_table_ptr>,
  // A signal from another peer's socket (from, data as JSON text).
  caf::reacts_to<atom::signal, std::string, std::string>,
  // Its socket's hello (sent by the socket): asks the lobby, answers the
  // page (welcome, or an error).
  caf::reacts_to<atom::hello, voice_hello>,
  // A voice message for the page, rendered (peer_joined, peer_left,
  // replaced, an error), and whether the socket speaks for no one now.
  caf::reacts_to<atom::voice, std::string, bool>>;

/// One lobby: owns its members and handles joins.
using lobby_actor = caf::typed_actor<
  // The lobby with its members.
  caf::replies_to<atom::get>::with<lobby>,
  // A bot joins: answered once the provider accepted and the member is
  // durable; the same bot and nick again returns the existing session.
  caf::replies_to<atom::join, bot_join>::with<session>,
  // A person joins (nick): a new session and its token, answered once the
  // member is durable.
  caf::replies_to<atom::add, std::string>::with<person_session>,
  // A socket speaks for a session (SPEC §9 hello): the welcome, or
  // bad_token or voice_full.
  caf::replies_to<atom::hello, voice_hello, lobby_subscriber_actor>::with<
    voice_welcome>,
  // Timer: a person without a socket since the given arming (session id,
  // generation) ends.
  caf::reacts_to<atom::idle, std::string, uint64_t>,
  // Timer: the empty-lobby grace since the given arming (generation)
  // ended: the bot members leave, unless a person came.
  caf::reacts_to<atom::grace, uint64_t>,
  // A member leaves; a bot's provider is told to stop its run.
  caf::replies_to<atom::remove, std::string>::with<bool>,
  // A provider registered again with the given runs (provider id, run ids,
  // registration time): its bot members dispatched before that time whose
  // runs it no longer has are dispatched again; answers the run ids of that
  // provider the lobby still has.
  caf::replies_to<atom::reconcile, std::string, std::vector<std::string>,
                  double>::with<std::vector<std::string>>,
  // Dispatch these bot members again (session ids, the provider they are
  // leaving, why), each to a candidate of its bot; orphaned when none.
  caf::reacts_to<atom::redispatch, std::vector<std::string>, provider,
                 move_reason>,
  // Providers of these bots can take runs now: orphaned members of them
  // are dispatched again.
  caf::reacts_to<atom::orphans, std::vector<std::string>>,
  // Send the members, then every event, to a subscriber until it dies.
  caf::reacts_to<atom::subscribe, lobby_subscriber_actor>,
  // A bot member says something (session id, text, the provider it came
  // from); lines from others, or for another provider's bot, are ignored.
  caf::reacts_to<atom::say, std::string, std::string, std::string>,
  // Someone on a lobby page says something (nick, text).
  caf::reacts_to<atom::chat, std::string, std::string>,
  // Cluster mode: the same lines, said on another instance (never
  // broadcast again).
  caf::reacts_to<atom::say, std::string, std::string, std::string,
                 atom::remote>,
  caf::reacts_to<atom::chat, std::string, std::string, atom::remote>,
  // Cluster mode: a voice peer's socket on another instance, or its going;
  // and a call to tell the other instances where this lobby's voice
  // sockets are (an instance that just connected asks).
  caf::reacts_to<atom::seats, voice_seat, atom::remote>,
  caf::reacts_to<atom::seats>>::
  // Cluster mode: bot members another instance changed (routed by the
  // directory): applied without writing them, announced as local ones are.
  extend_with<remote_owner_actor>;

/// The directory of lobbies: creates them (durably, through the lobbies'
/// store), lists them, and routes to them.
using lobby_directory_actor = caf::typed_actor<
  // Create a lobby, or return the existing one of that name.
  caf::replies_to<atom::create, lobby_create>::with<lobby_created>,
  // The public lobbies at the listing's version (GET /api/lobby shows
  // them without their sessions).
  caf::replies_to<atom::list>::with<lobby_listing_ptr>,
  // One lobby with its members.
  caf::replies_to<atom::get, std::string>::with<lobby>,
  // A bot joins a lobby (delegated to the lobby).
  caf::replies_to<atom::join, std::string, bot_join>::with<session>,
  // A person joins a lobby (delegated to the lobby).
  caf::replies_to<atom::add, std::string, std::string>::with<person_session>,
  // A member leaves a lobby (delegated to the lobby).
  caf::replies_to<atom::remove, std::string, std::string>::with<bool>,
  // A member leaves; the lobby is found by session when not given.
  caf::replies_to<atom::leave, leave_request>::with<std::string>,
  // A lobby's members changed (applied, durable where they must be): the
  // listing and the session index follow.
  caf::reacts_to<atom::persist, member_change>,
  // A provider registered again with the given runs (provider id, runs,
  // registration time): reconciles every lobby concerned and answers the
  // runs no lobby knows (the provider stops them).
  caf::replies_to<atom::reconcile, std::string, std::vector<bot_run>,
                  double>::with<std::vector<std::string>>,
  // A provider is gone or drained past its timeout (its last record, why):
  // every bot member of it is dispatched again.
  caf::reacts_to<atom::redispatch, provider, move_reason>,
  // A provider's heartbeat listed its runs (id, run ids, cutoff): its bot
  // members dispatched before the cutoff (unix s) whose runs it lacks are
  // dispatched again.
  caf::reacts_to<atom::lost, std::string, std::vector<std::string>, double>,
  // Providers of these bots can take runs now: orphaned members of them are
  // dispatched again.
  caf::reacts_to<atom::orphans, std::vector<std::string>>,
  // A bot member says something in its lobby (lobby id, session id, text,
  // the provider it came from).
  caf::reacts_to<atom::say, std::string, std::string, std::string,
                 std::string>,
  // The actor of a lobby, to subscribe to its events.
  caf::replies_to<atom::subscribe, std::string>::with<lobby_actor>,
  // Cluster mode: every lobby tells the other instances where its voice
  // sockets are.
  caf::reacts_to<atom::seats>>::
  // Cluster mode: lobbies and members another instance changed: applied
  // without writing them again, announced to the lobbies' subscribers.
  extend_with<remote_owner_actor>;

/// Cluster mode (design §4.3): the reservations of joins' names in etcd,
/// kept by the lobbies' store. A join reserves its (lobby, bot, nick)
/// before it dispatches, so two instances never dispatch one name at once.
using claims_actor = caf::typed_actor<
  // Reserve a name (lobby id, bot, nick) for a session: answers "" when it
  // is the session's now, else the session JSON of the member holding it.
  caf::replies_to<atom::reserve, std::string, std::string, std::string,
                  std::string>::with<std::string>,
  // Give back a reservation no member holds (a dispatch or commit failed).
  caf::reacts_to<atom::leave, std::string, std::string, std::string,
                 std::string>>;

/// Cluster mode: what each instance publishes on its cluster port for the
/// others (the CAF providers' joins and stops it holds the links of, and
/// the lines said elsewhere). Never forwards anything again.
using cluster_relay_actor = caf::typed_actor<
  // A join for a CAF provider linked here (provider id, request).
  caf::replies_to<atom::join, std::string, dispatch_request>::with<std::string>,
  // A stop for a CAF provider linked here (provider id, run id).
  caf::replies_to<atom::stop, std::string, std::string>::with<bool>,
  // A chat line said on another instance (lobby id, nick, text).
  caf::reacts_to<atom::chat, std::string, std::string, std::string,
                 atom::remote>,
  // A bot member's line said on another instance (lobby id, session id,
  // text, provider id).
  caf::reacts_to<atom::say, std::string, std::string, std::string,
                 std::string, atom::remote>,
  // A voice peer's socket on another instance, or its going (SPEC §9).
  caf::reacts_to<atom::seats, voice_seat, atom::remote>,
  // An instance that just connected asks where this one's voice sockets
  // are.
  caf::reacts_to<atom::seats>,
  // The local actors it relays to; sent once at start-up.
  caf::reacts_to<atom::peers, dispatcher_actor, lobby_directory_actor>>;

/// Cluster mode: lines said here, for every other instance (best effort).
using line_relay_actor = caf::typed_actor<
  // A chat line (lobby id, nick, text).
  caf::reacts_to<atom::chat, std::string, std::string, std::string>,
  // A bot member's line (lobby id, session id, text, provider id).
  caf::reacts_to<atom::say, std::string, std::string, std::string,
                 std::string>,
  // A voice peer's socket here, or its going.
  caf::reacts_to<atom::seats, voice_seat>>;

/// Cluster mode: which instance holds each CAF provider's link (etcd's
/// PREFIX links/, under each instance's lease), and the other instances'
/// relays; it also sends the lines said here to them.
using provider_links_actor = caf::typed_actor<
  // A provider linked here.
  caf::reacts_to<atom::registration, std::string>,
  // A provider's link here is gone.
  caf::reacts_to<atom::deregister, std::string>,
  // The relay of the instance holding a provider's link (error: none).
  caf::replies_to<atom::resolve, std::string>::with<cluster_relay_actor>,
  // Whether any instance holds a provider's link.
  caf::replies_to<atom::probe, std::string>::with<bool>>::
  extend_with<line_relay_actor>;

/// Wakes every cleanup interval and asks the registry to evict stale
/// providers, with the mass-eviction guard of SPEC §3.
using cleanup_actor = caf::typed_actor<
  // The self-rearming timer.
  caf::reacts_to<atom::sweep>>;

/// The sole owner of provider state and of bot_providers.json, and of the
/// fleet's rules (SPEC §7): states, placement, drains, tombstones, the
/// registration rate.
using registry_actor = caf::typed_actor<
  // Register or re-register a provider; answered once durable. 429
  // (rate_limited) past the registration rate, 410 (removed) for a removed
  // instance.
  caf::replies_to<atom::registration, provider_registration>::with<std::string>,
  // A heartbeat (id, what it reports); answers last_seen, or not_found, or
  // removed.
  caf::replies_to<atom::heartbeat, std::string, heartbeat>::with<double>,
  // Remove a provider (id, key, on purpose: leaves a tombstone of its
  // instance); answered once durable. Its bot members are dispatched again.
  caf::replies_to<atom::deregister, std::string, std::string, bool>::with<bool>,
  // Drain a provider (id, request); answers it, now draining, once durable.
  caf::replies_to<atom::drain, std::string, drain_request>::with<provider>,
  // One provider by id.
  caf::replies_to<atom::get, std::string>::with<provider>,
  // Every provider, ordered by registration, at the current version.
  caf::replies_to<atom::list>::with<provider_catalog_ptr>,
  // Where a join of a bot goes (bot, preferred provider id or empty): the
  // candidates in placement order.
  caf::replies_to<atom::resolve, std::string, std::string>::with<placement>,
  // Place a join and dispatch it (request, preferred provider id or empty,
  // provider id to try last or empty): delegated with its candidates to the
  // dispatcher, which answers; 404 for a bot no provider offers, 503 when
  // none takes joins now.
  caf::replies_to<atom::place, dispatch_request, std::string,
                  std::string>::with<placed>,
  // The providers unseen for at least the given time (for the cleanup actor).
  caf::replies_to<atom::stale, caf::timespan>::with<stale_report>,
  // Evict those of the given providers still unseen for the given time;
  // answers the evicted ids once durable. Their bot members are dispatched
  // again.
  caf::replies_to<atom::evict, std::vector<std::string>, caf::timespan>::with<
    std::vector<std::string>>,
  // Make everything durable now (heartbeats included); answered once it is.
  caf::replies_to<atom::flush>::with<uint64_t>,
  // Periodic record of changes that need no acknowledgement (heartbeats).
  caf::reacts_to<atom::flush, atom::sweep>,
  // A call to the provider got an answer that shows it alive (sent by the
  // dispatcher only: a join accepted, a probe answered).
  caf::reacts_to<atom::seen, std::string>,
  // A call to the provider got no answer, or its link dropped (sent by the
  // dispatcher only).
  caf::reacts_to<atom::status, std::string, provider_status>,
  // The number of bot members a provider runs (sent by the directory on
  // each change): active_runs, and the end of a drain at zero. An empty id
  // ends the directory's census at start-up (providers not named run none).
  caf::reacts_to<atom::runs, std::string, uint64_t>,
  // The actors the registry tells of fleet events (re-dispatch, orphans,
  // lost runs) and asks to stop runs; sent once at start-up.
  caf::reacts_to<atom::peers, lobby_directory_actor, dispatcher_actor>,
  // Timer: a provider's heartbeats are late if none came since the given
  // count (id, heartbeat count).
  caf::reacts_to<atom::suspect, std::string, uint64_t>,
  // Timer: a provider's drain times out at the given deadline (id, unix s).
  caf::reacts_to<atom::expire, std::string, double>>::
  // Cluster mode: providers another instance changed.
  extend_with<remote_owner_actor>;

/// Joins with an Idempotency-Key header (SPEC §7): the first accepted answer
/// of each key is kept, durably (idempotency.journal), for idempotency_ttl.
using idempotency_actor = caf::typed_actor<
  // A join (key, fingerprint of the request, lobby id, join): the first
  // answer of the key when its fingerprint matches, idempotency_key_reused
  // when not, else the join as the directory answers it.
  caf::replies_to<atom::join, std::string, std::string, std::string,
                  bot_join>::with<session>,
  // Timer: forget expired keys.
  caf::reacts_to<atom::sweep>>::
  // Cluster mode: keys another instance answered first.
  extend_with<remote_owner_actor>;

} // namespace vb

// Local handles, after the local types (and so after the wire block).
CAF_BEGIN_TYPE_ID_BLOCK(vb_actors, caf::id_block::vb_local::end)
  CAF_ADD_TYPE_ID(vb_actors, (vb::snapshot_writer_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::store_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::registry_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::cleanup_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::dispatcher_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::lobby_subscriber_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::lobby_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::lobby_directory_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::idempotency_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::remote_owner_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::cluster_relay_actor))
CAF_END_TYPE_ID_BLOCK(vb_actors)

namespace vb {

/// Registers the server's local types (not the protocol's) with a CAF
/// config: the server's runtime adds them to add_protocol_types.
void add_local_types(caf::actor_system_config& cfg);

/// Registers every message type of voicebot-server, the protocol's and the
/// local ones, with a CAF config (the server and the actor tests).
void add_message_types(caf::actor_system_config& cfg);

} // namespace vb
