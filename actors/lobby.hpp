// A lobby: one actor per lobby that owns its members and handles joins
// (SPEC §3: 200 only once the provider accepted and the member is durable;
// a retried join returns the existing session). The directory that
// creates, lists and routes to lobbies is actors/directory.hpp. Sources:
// lobby.cpp (members, events), join_flow.cpp (join, failover, moves),
// lobby_load.cpp (loading, images), lobby_shared.hpp (what they share).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/typed_response_promise.hpp>

#include "actors/interfaces.hpp"
#include "actors/ports.hpp"

namespace vb {

struct server_stats;

/// The file name of the lobby snapshot in the data directory.
inline constexpr const char* lobbies_file_name = "lobbies.json";

/// The lobby of an image: with its sessions (all, or the bots only) or
/// without them.
enum class members_view { all, bots, none };
lobby to_lobby(const lobby_image& img, members_view view = members_view::all);
lobby_image to_image(lobby value);
/// A member of an image.
std::shared_ptr<const lobby_image::member> make_member(session s);

struct journal_store_seed;

/// Loads the lobbies of `dir`: the newest valid snapshot, then the journal
/// records after it. Fills `seed` for the lobbies' store. Blocking: call it
/// before the server serves.
std::vector<lobby_image> load_lobbies(const std::string& dir,
                                      journal_store_seed& seed,
                                      server_stats* stats = nullptr);
/// The images of plain lobbies (tests, and anything not loaded from disk).
std::vector<lobby_image> to_images(std::vector<lobby> ls);
/// A member's session, sharing the member (no copy).
std::shared_ptr<const session>
shared_session(const std::shared_ptr<const lobby_image::member>& m);

/// The actors a lobby works with.
struct lobby_peers {
  /// Resolves bots to providers. A lobby never reports provider health
  /// (seen, unreachable): the dispatcher does, from each call's outcome.
  registry_actor registry;
  dispatcher_actor dispatcher;
  /// Where lobbies and bot members are made durable (lobbies.journal).
  store_actor store;
  /// How long a lobby waits for the registry.
  caf::timespan timeout = std::chrono::seconds(5);
  /// How long a lobby waits for a join placed and dispatched (the
  /// dispatcher answers within every failover's dispatch_timeout; this is a
  /// safety net).
  caf::timespan dispatch_wait = std::chrono::seconds(15);
  /// Counts re-dispatches (may be null).
  std::shared_ptr<server_stats> stats;
  /// Lobbies the directory holds at most; a creation past it is refused
  /// (ec::full), so that clients cannot grow the state without bound.
  size_t max_lobbies = 10000;
  /// Members (people and bots, joins in flight included) of one lobby.
  size_t max_members = 1000;
  /// How long a run a provider's heartbeats list and no bot member holds
  /// must stay so before it is stopped (a leave or move whose stop failed).
  /// Above a join's longest time from dispatch to commit (every failover's
  /// dispatch_timeout, then the write), so a join in flight is never
  /// taken for one.
  double stray_grace = 15;
  /// Voice peers of one lobby at most (SPEC §9, a full mesh).
  size_t max_voice_peers = 8;
  /// How long a person's session lasts without a socket speaking for it
  /// (SPEC §9); time the server was down does not count.
  caf::timespan session_idle_timeout = std::chrono::seconds(120);
  /// How long bot members stay in a lobby whose people all left (it had
  /// some); then each leaves as a bot leave does, saying empty_lobby. Zero:
  /// never (bots alone keep a lobby for ever). Downtime does not count.
  caf::timespan empty_lobby_grace = caf::timespan{0};
  /// Who may take a join's name (actors/ports.hpp): the lobby's own
  /// members (embedded), or a reservation in etcd (cluster).
  std::shared_ptr<const claim_port> claims = local_claims();
  /// Where lines said here go beyond this instance: nowhere (embedded), or
  /// to every other instance (cluster).
  std::shared_ptr<const line_port> lines = local_lines();
  /// Which instance stops an empty lobby's bots: this one (embedded), or
  /// the sweeper (cluster).
  std::shared_ptr<const duty_port> duty = local_duty();
};

struct lobby_state {
  static inline constexpr const char* name = "lobby";

  using join_key = std::pair<std::string, std::string>; // bot name, nick
  using session_promise = caf::typed_response_promise<session>;

  lobby_actor::pointer self = nullptr;
  lobby_directory_actor directory;
  lobby_peers peers;
  /// The lobby and all its members (people and bots, all durable).
  lobby_image value;
  std::mt19937_64 rng{std::random_device{}()};
  /// The bot members by bot name and nick (a retried join finds its session).
  std::map<join_key, std::shared_ptr<const lobby_image::member>> bots;
  /// Joins in flight: identical requests wait for the first one's answer.
  std::map<join_key, std::vector<session_promise>> pending;
  /// Joins whose member is being written, and the same joins that came
  /// meanwhile: asked anew once the write is answered.
  std::set<join_key> committing;
  std::map<join_key, std::vector<std::pair<bot_join, session_promise>>>
    after_commit;
  /// Live subscribers (WebSocket connections), each monitored: a dead one
  /// is forgotten.
  std::vector<lobby_subscriber_actor> subscribers;
  using members_by_provider = std::unordered_map<
    std::string,
    std::unordered_map<std::string, std::shared_ptr<const lobby_image::member>>>;
  /// The bot members that hear lobby events (of CAF providers, or of
  /// providers not known yet), by provider id and session id.
  members_by_provider bots_by_provider;
  /// The bot members of HTTP providers, which hear none.
  members_by_provider quiet_bots;
  /// How the providers of bot members are reached, by provider id: only
  /// CAF providers' bots hear lobby events.
  std::unordered_map<std::string, transport> transports;
  /// Events for bots whose provider record is being asked of the registry,
  /// by provider id, in order: (run id, event).
  std::unordered_map<std::string,
                     std::vector<std::pair<std::string, lobby_event>>>
    awaiting;

  /// A bot member arrives (`bots` and `bots_by_provider`).
  void add_bot(const join_key& key,
               std::shared_ptr<const lobby_image::member> m);
  /// A bot member leaves.
  void drop_bot(const session& s, bool forget = true);
  /// How a bot provider is reached: an HTTP provider's bots leave the event
  /// fan-out.
  void learned(const provider& p);
  /// Drops the record of a provider no bot member of this lobby has any
  /// more: with providers coming and going, the records would otherwise
  /// pile up for the lobby's life.
  void forget_unused_provider(const std::string& provider_id);
  void join(const bot_join& j, session_promise rp);
  /// The join's name is claimed (actors/ports.hpp): the member holding it
  /// is the answer; none, the join is placed.
  void claimed(const join_key& key, const bot_join& j,
               const std::string& session_id,
               const std::optional<session>& holder);
  /// Has the registry place the join and the dispatcher dispatch it, with
  /// failover (after its reservation, in cluster mode; given back when none
  /// takes it).
  void place(const join_key& key, const bot_join& j,
             const std::string& session_id);
  /// Gives back a claimed name no member holds (a dispatch or a commit
  /// failed).
  void release(const std::string& bot_name, const std::string& nick,
               const std::string& session_id);
  /// Bot members being dispatched again, by session id.
  std::set<std::string> moving;
  /// Dispatches a bot member again (SPEC §7, re-dispatch): to a candidate
  /// of its bot, `old` last (and never when it is gone or draining: the
  /// registry lists it no more); orphaned when none accepts.
  void move(std::shared_ptr<const lobby_image::member> m, provider old,
            move_reason why);
  /// Replaces a member by its new value, durably done already (announced,
  /// the directory told).
  void replace_member(const std::shared_ptr<const lobby_image::member>& now,
                      std::optional<lobby_event_type> event);
  /// A moved member's new run, written (as `sid`'s one write in flight)
  /// and put in place, unless the member left or changed meanwhile.
  void commit_move(std::shared_ptr<const lobby_image::member> from,
                   std::shared_ptr<const lobby_image::member> now,
                   std::function<void()> stop_old);
  /// A member no provider takes, marked orphaned the same way.
  void mark_orphaned(std::shared_ptr<const lobby_image::member> from,
                     std::shared_ptr<const lobby_image::member> now);
  /// Whether `m` is still the member of its session id.
  bool is_current(const std::shared_ptr<const lobby_image::member>& m) const;
  /// A member leaves (SPEC §3: answered once durable), after any write of
  /// it in flight; its member_left says `why`.
  void leave(const std::string& sid,
             std::function<void(const caf::error&)> done,
             leave_reason why = leave_reason::asked);
  /// Bot members with a write in flight (a leave, a move, an orphan mark),
  /// by session id, with what waits for it. Two writes of one member never
  /// cross in the store: a leave answered before a move's write landed
  /// would come back at the next start.
  std::unordered_map<std::string, std::vector<std::function<void()>>> writing;
  /// Queues `retry` behind `sid`'s write in flight; false when there is none.
  bool wait_for_write(const std::string& sid, std::function<void()> retry);
  /// Writes `batch` as `sid`'s one write in flight: `done` runs, then what
  /// waited for it, each deciding again.
  void write_member(const std::string& sid, store_batch batch,
                    std::function<void(const caf::error&)> done);
  void accepted(const join_key& key, session s);
  /// A durable person enters (`value`): announced and the directory told.
  void insert_person(std::shared_ptr<const lobby_image::member> m);
  /// A durable bot member enters (`bots`, the fan-out, `value`): announced
  /// and the directory told.
  void insert_bot(std::shared_ptr<const lobby_image::member> m);
  /// Cluster mode: bot members another instance changed, without writing
  /// them: added, replaced (same session id) or removed, announced and told
  /// to the directory as local changes are; with `resync`, bot members the
  /// batch does not name leave.
  void apply_remote(const remote_batch& batch);
  void finish(const join_key& key, const caf::error& err, const session& s);
  /// A person joins (SPEC §9): a session with a new token, whose hash is
  /// written with the member; answered with the token once durable.
  void add_person(const std::string& nick,
                  caf::typed_response_promise<person_session> rp);
  /// No member more may join: members and joins in flight are at
  /// peers.max_members.
  bool full() const {
    return value.sessions.size() + pending.size() >= peers.max_members;
  }
  /// Adds a subscriber and sends it the members.
  void subscribe(lobby_subscriber_actor sub);
  /// Forgets a subscriber that died.
  void unsubscribe(const caf::actor_addr& who);

  // -- voice (SPEC §9; actors/lobby_voice.cpp) --

  /// The socket speaking for each session now, by session id.
  std::unordered_map<std::string, lobby_subscriber_actor> seats;
  /// Cluster mode: sockets on other instances, by session id (a seat here
  /// wins: the latest hello took over).
  std::unordered_map<std::string, caf::strong_actor_ptr> remote_seats;
  /// People without a socket: the arming of their idle timer, by session
  /// id (an older timer that fires changes nothing).
  std::unordered_map<std::string, uint64_t> idle;
  uint64_t idle_generation = 0;
  /// Members that are voice peers.
  size_t voice_peers() const;
  /// A socket says hello for a session: checked, seated, announced.
  caf::result<voice_welcome> hello(const voice_hello& h,
                                   lobby_subscriber_actor socket);
  /// A member's first hello: marked a voice peer durably, then welcomed.
  void become_peer(const std::string& sid,
                   caf::typed_response_promise<voice_welcome> rp);
  /// The welcome of `session_id`: every other voice peer.
  voice_welcome welcome_for(const std::string& session_id) const;
  /// A member's record changed: made a voice peer (peer_joined), or no
  /// longer one (a moved bot: peer_left, its old socket fenced).
  void voice_changed(const std::optional<session>& was, const session& now);
  /// Sends a rendered voice message to every seated socket but `except`'s.
  void announce(const std::string& text, const std::string& except);
  /// Sends every seated socket the table of voice sockets.
  void publish_voice();
  /// A socket is gone: the sessions it spoke for have none (people's idle
  /// timers start); not a peer_left.
  void unseat(const caf::actor_addr& socket);
  /// A voice peer ends (it left, or a bot's run moved or was lost: then
  /// `fenced`, and its old socket is told its token is no longer good).
  void voice_gone(const session& s, bool fenced);
  /// Cluster mode: a socket on another instance speaks for a session now,
  /// or no longer does.
  void seated_elsewhere(const voice_seat& seat);
  /// Cluster mode: tells the other instances of a socket here (`online`)
  /// or its going; `renewed`: a hello anew of a known peer.
  void tell_seat(const std::string& session_id,
                 const lobby_subscriber_actor& socket, bool online,
                 bool renewed);
  /// Cluster mode: tells the other instances of every socket seated here.
  void tell_seats();
  /// Cluster mode: another instance's socket is unreachable (it dropped,
  /// the instance died): its sessions have no socket.
  void remote_gone(const caf::actor_addr& socket);
  /// Whether a socket here or elsewhere speaks for the session.
  bool has_socket(const std::string& session_id) const;
  /// Starts a person's idle timer.
  void arm_idle(const std::string& session_id);
  /// A person's idle timer fired: the session ends unless a socket came.
  void idle_expired(const std::string& session_id, uint64_t generation);
  /// Sends an event to every subscriber and to every bot member but the one
  /// it is about, without waiting for any of them. Subscribers hear `why`
  /// too (bots do not: the CAF wire has no reason).
  void emit(lobby_event_type type, const session& member,
            std::string text = {}, leave_reason why = leave_reason::asked);
  /// Sends an event to one bot member through the dispatcher.
  void tell_bot(const session& bot, const lobby_event& ev);
  /// A member says something; non-members and bad lines are ignored.
  void say(const std::string& session_id, const std::string& text,
           const std::string& provider_id, bool here);
  /// Someone on a lobby page says something.
  void chat(const std::string& nick, const std::string& text, bool here);
  /// Sends changes to the store; `done` runs in the lobby once they are
  /// durable, or failed (then nothing of them may be applied).
  void write(store_batch batch, std::function<void(const caf::error&)> done);
  /// Tells the directory of an applied change (its listing and session
  /// index), without waiting.
  void notify(member_change change);
  /// Tells a bot's provider to stop its run, without waiting.
  void stop_run(const session& s);
  std::shared_ptr<const lobby_image::member>
  find_member(const std::string& session_id) const;
  /// Removes a member (announced with `why`, the directory told); nothing
  /// when absent.
  std::optional<session>
  remove_member(const std::string& session_id,
                leave_reason why = leave_reason::asked);

  // -- the empty-lobby grace (actors/lobby_grace.cpp) --

  /// The arming of the grace timer now (an older timer that fires changes
  /// nothing); 0: none armed.
  uint64_t grace_armed = 0;
  uint64_t grace_generation = 0;
  /// The grace's leaves in flight (no new grace is armed meanwhile).
  size_t grace_leaving = 0;
  /// Members that are people (not bots).
  size_t people = 0;
  /// Whether the grace runs now: on, the lobby had people, has none, and
  /// has bot members.
  bool grace_due() const;
  /// Arms the grace timer when it is due and not armed, and disarms it when
  /// it is no longer due; a bot that joins meanwhile does not re-arm it.
  /// Called after every change of the members.
  void check_grace();
  /// The grace timer fired: the bot members leave (empty_lobby), if it is
  /// still due and this instance is on duty; else armed again.
  void grace_expired(uint64_t generation);
  /// The store change of the header with had_people set.
  store_change had_people_change() const;
  /// A lobby with people whose header does not say so yet (data from before
  /// the grace): the header is written, so that a restart still knows.
  void remember_people();
};

lobby_actor::behavior_type
lobby_fn(lobby_actor::stateful_pointer<lobby_state> self,
         lobby_directory_actor directory, lobby_peers peers,
         lobby_image value);

} // namespace vb
