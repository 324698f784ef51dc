// Cluster mode (SPEC §8, design cluster-etcd.md §4): the owners' state in
// etcd instead of the data directory's journals. Its actors implement the
// ports of actors/ (store_actor, claims_actor, provider_links_actor,
// cluster_relay_actor); docs/architecture.md shows the two wirings.
//
// - etcd_store: the owners' store seam (store_actor) on etcd. Each batch of
//   changes is one transaction (batches waiting behind an in-flight one
//   share the next, up to etcd's 128 operations), fenced by the instance's
//   lease: it commits only while this instance's key holds its live lease,
//   so an instance paused past its lease commits nothing on waking. A watch
//   on the owner's prefix hands the changes of the other instances to the
//   owner (remote_batch); its own writes are recognised by revision; a
//   compaction or a lost history resyncs the owner whole.
// - membership: the instance's lease (renewed every TTL/3), its key under
//   instances/, the cleanup sweeper's election, and /api/health's "store".
// - Start-up (blocking): the first start on an empty etcd imports the
//   instance's snapshots and journals once; then each owner's entries are
//   read at one revision and rendered as a snapshot text, which the owners'
//   usual decoders load.
//
// Keys: PREFIX + owner + "/" + key, and PREFIX + owner + "/" + parent + "/"
// + key for an entry under a parent (a member under its lobby); parent and
// key are percent-encoded (every byte but [A-Za-z0-9._~:@-]). Values are the
// entries' snapshot JSON. No Beast here; CAF only through interfaces.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/io/middleman_actor.hpp>

#include "actors/interfaces.hpp"
#include "actors/journal_store.hpp"

namespace vb::etcd {
class etcd_client;
class lease_status;
} // namespace vb::etcd

namespace vb {

struct server_stats;

/// What the cluster's actors share: the client, the names, and the lease
/// that fences every commit.
struct cluster_context {
  std::shared_ptr<etcd::etcd_client> client;
  std::string prefix = "/vb/";
  std::string instance_id;
  std::chrono::seconds ttl{10};
  /// The lease the instance key holds while it is live; 0 while fenced.
  std::atomic<int64_t> lease{0};
  /// The keeper's view of that lease (renewal age), set with `lease`.
  std::atomic<const etcd::lease_status*> status{nullptr};
  /// Every keeper status `status` ever pointed to, kept as long as the
  /// context (any actor holding it may still read one). Written by the
  /// membership only.
  std::vector<std::shared_ptr<const etcd::lease_status>> statuses;
  /// When a transaction last failed for want of etcd (steady ns; 0: never).
  std::atomic<int64_t> failed_ns{0};

  std::string instance_key() const {
    return prefix + "instances/" + instance_id;
  }
  std::string sweeper_key() const {
    return prefix + "leader/sweeper";
  }
  /// Commits may be sent: a live lease renewed within 0.7·TTL.
  bool writable() const;
};

/// The etcd key of an owner's entry, and back (false: not one of its keys).
std::string cluster_key(const std::string& owner_prefix,
                        const std::string& parent, const std::string& key);
bool split_cluster_key(const std::string& owner_prefix,
                       const std::string& etcd_key, std::string& parent,
                       std::string& key);

/// The owners, by the name of their snapshot file: "providers", "lobbies",
/// "idempotency".
std::string cluster_owner(const std::string& file_name);

/// Start-up, blocking: one read of etcd, tried for up to 60 s while etcd
/// does not answer; an error at once when it refuses this client (TLS,
/// authentication, permissions). Returns an error text naming the cause,
/// or empty.
std::string cluster_probe(cluster_context& ctx, const std::string& endpoints);

/// Start-up, blocking. Imports the owners' loaded images into an empty etcd
/// once (guarded by PREFIX meta/schema; another instance importing at the
/// same time is waited for). Returns an error text, or empty.
std::string cluster_import_once(
  cluster_context& ctx,
  const std::vector<std::pair<std::string, journal_store_seed*>>& seeds);

/// Start-up, blocking: every owner's entries at one revision, each rendered
/// as the snapshot text its decoder reads (`render` per owner, in the order
/// of `owners`). Fills `texts` and `revision`; returns an error text, or
/// empty.
std::string cluster_load(cluster_context& ctx,
                         const std::vector<std::pair<std::string, image_renderer>>&
                           owners,
                         std::vector<std::string>& texts, int64_t& revision);

/// The instance's membership (cluster/membership): its lease, its key,
/// the sweeper's election.
using membership_actor = caf::typed_actor<
  // Answers the lease id once the instance key is written with a live
  // lease (at start-up: the instance is live).
  caf::replies_to<atom::get>::with<int64_t>,
  // Who lets the CAF providers linked here go when the lease is lost.
  caf::reacts_to<atom::peers, dispatcher_actor>>;

/// The store of one owner in etcd (cluster/store), and, for the lobbies,
/// the reservations of joins' names (the same actor: a commit checks its
/// reservation in the same transaction).
struct etcd_store_handles {
  store_actor store;
  claims_actor claims;
  /// Where the store sends the other instances' changes: tell it once the
  /// owner exists (the registry, the lobby directory, the idempotency
  /// actor); changes that come before are kept for it.
  caf::typed_actor<caf::reacts_to<atom::peers, remote_owner_actor>> owner;
};

/// The store of one owner in etcd; its watch starts after `revision`.
etcd_store_handles spawn_etcd_store(caf::actor_system& sys,
                                    std::shared_ptr<cluster_context> ctx,
                                    std::string owner, int64_t revision,
                                    std::shared_ptr<server_stats> stats);

/// The instance's membership: spawned at start-up. `info` is the JSON value
/// of the instance key.
membership_actor spawn_membership(caf::actor_system& sys,
                                  std::shared_ptr<cluster_context> ctx,
                                  std::shared_ptr<server_stats> stats,
                                  std::string info);

/// The table of CAF provider links (PREFIX links/<provider id>: {iid,
/// cluster}, under the instance's lease, so that a dead instance's links go
/// with it): told of this instance's links by the dispatcher (registration,
/// deregister), it rewrites them under a new lease after a fence; `resolve`
/// answers the relay of the instance holding a provider's link (connected
/// over CAF on first use), `probe` whether any instance does. It also sends
/// the lines said here to every other instance's relay, and the voice
/// seats (SPEC §9; on a new connection both sides tell theirs). `cluster`
/// is this instance's cluster port as HOST:PORT, `own` its relay;
/// `transport` connects to the others' (the middleman's, or mutual TLS).
provider_links_actor spawn_cluster_links(caf::actor_system& sys,
                                         std::shared_ptr<cluster_context> ctx,
                                         std::string cluster,
                                         cluster_relay_actor own,
                                         caf::io::middleman_actor transport);

/// The instance's relay, published on --cluster-port: the joins and stops
/// of the CAF providers whose link this instance holds, relayed to its
/// dispatcher (which never forwards them again), and the lines said on
/// other instances, to the lobby. Tell it the dispatcher and the directory
/// with (peers, ...) once they exist.
cluster_relay_actor spawn_cluster_relay(caf::actor_system& sys);

/// Registers cluster mode's own messages with a CAF config (the server's,
/// and the tests of the cluster actors), after add_message_types.
void add_cluster_types(caf::actor_system_config& cfg);

/// The instance id kept in DATA_DIR/instance_id (made on the first start).
/// Empty with `error` set when the file cannot be read or written.
std::string stored_instance_id(const std::string& data_dir, std::string& error);

} // namespace vb
