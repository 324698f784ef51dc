// The messages cluster mode's actors send themselves, mostly etcd's answers
// from the client's thread (cluster/*.cpp only). Each is inspectable and has
// a type id, as every message between our actors does; none crosses a
// process.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>
#include <caf/type_id.hpp>

#include "actors/interfaces.hpp" // and VB_INSPECT (actors/messages.hpp)
#include "etcd/etcd_client.hpp"

namespace vb::cluster_detail {

/// A transaction of a store came back (on the client's thread).
struct txn_done {
  uint64_t id = 0;
  etcd::txn_result result;
};

/// A watch update of a store (on the client's thread).
struct watch_msg {
  uint64_t watch = 0;
  etcd::watch_update update;
};

/// A full read of a store's prefix for a resync.
struct resync_done {
  etcd::etcd_error error;
  int64_t revision = 0;
  std::vector<etcd::key_value> kvs;
};

/// The membership's lease was granted or lost, or its instance key written.
struct lease_event {
  enum class kind { granted, lost, registered, register_failed } what;
  int64_t lease = 0;
  std::string message;
};

/// The membership's election attempt came back.
struct campaign_done {
  int64_t lease = 0;
  bool leader = false;
  std::string message;
};

struct tick {};

/// The links table's watch, and its first read.
struct links_watch {
  uint64_t gen = 0;
  etcd::watch_update update;
  bool instances = false; // of PREFIX instances/, else of PREFIX links/
};
struct links_read {
  etcd::etcd_error error;
  int64_t revision = 0;
  std::vector<etcd::key_value> kvs;
  bool instances = false;
};
/// A line said here, for the other instances' relays.
struct relay_line {
  bool said = false; // a bot member's line; else a chat line
  std::string lobby_id;
  std::string who; // its session id, or the nick
  std::string text;
  std::string provider_id;
  /// A voice peer's socket instead of a line (when its session is set).
  voice_seat seat;
};
/// A line to try again on one instance.
struct links_resend {
  std::string addr;
  relay_line line;
  int attempt = 0;
};
/// A link the table did not know yet, read from etcd itself.
struct links_lookup {
  std::string id;
  etcd::range_result result;
};

/// A reservation's transaction came back, or its next try is due.
struct reserve_done {
  uint64_t job = 0;
  etcd::txn_result result;
};
struct reserve_retry {
  uint64_t job = 0;
};
/// A release came back (answered: etcd took it, or its compare failed).
struct release_done {
  std::string key;
  std::string session_id;
  int attempt = 0;
  bool answered = false;
  bool deleted = false;
  /// After a reservation etcd did not answer: it may be applied later, so
  /// the release is tried again a few times even when it found nothing.
  bool lingering = false;
};
struct release_retry {
  std::string key;
  std::string session_id;
  int attempt = 0;
  bool lingering = false;
};
/// The outcome check of a commit etcd did not answer came back, or is due.
struct settle_done {
  uint64_t id = 0;
  int attempt = 0;
  etcd::txn_result result;
};
struct settle_retry {
  uint64_t id = 0;
  int attempt = 0;
};

const char* to_string(lease_event::kind x);

} // namespace vb::cluster_detail

// -- inspection (field order is all that matters: nothing here leaves the
// process) --------------------------------------------------------------------

namespace vb::etcd {

const char* to_string(event_type x);
const char* to_string(txn_op::kind x);
const char* to_string(watch_update::kind x);

/// An optional key-value, inspected as CAF's own optional; a load writes
/// it back through the callback.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f,
                                        std::optional<key_value>& x) {
  caf::optional<key_value> tmp;
  if (x)
    tmp = *x;
  return f(tmp, caf::meta::load_callback([&]() -> caf::error {
             x = tmp ? std::optional<key_value>{*tmp} : std::nullopt;
             return caf::none;
           }));
}

VB_INSPECT(etcd_error, x.kind, x.code, x.http_status, x.message)
VB_INSPECT(key_value, x.key, x.value, x.create_revision,
                   x.mod_revision, x.version, x.lease)
VB_INSPECT(range_result, x.error, x.revision, x.kvs, x.count, x.more)
VB_INSPECT(put_result, x.error, x.revision, x.prev_kv)
VB_INSPECT(delete_result, x.error, x.revision, x.deleted, x.prev_kvs)
VB_INSPECT(txn_op_result, x.op, x.put, x.range, x.del)
VB_INSPECT(txn_result, x.error, x.revision, x.succeeded, x.responses)
VB_INSPECT(watch_event, x.type, x.kv, x.prev_kv)
VB_INSPECT(watch_update, x.what, x.revision, x.events,
                   x.compact_revision, x.message)

} // namespace vb::etcd

// -- inspection of the messages ------------------------------------------------

namespace vb::cluster_detail {

VB_INSPECT(txn_done, x.id, x.result)
VB_INSPECT(watch_msg, x.watch, x.update)
VB_INSPECT(resync_done, x.error, x.revision, x.kvs)
VB_INSPECT(lease_event, x.what, x.lease, x.message)
VB_INSPECT(campaign_done, x.lease, x.leader, x.message)
VB_INSPECT(links_watch, x.gen, x.update, x.instances)
VB_INSPECT(links_read, x.error, x.revision, x.kvs, x.instances)
VB_INSPECT(relay_line, x.said, x.lobby_id, x.who, x.text,
                   x.provider_id, x.seat)
VB_INSPECT(links_resend, x.addr, x.line, x.attempt)
VB_INSPECT(links_lookup, x.id, x.result)
VB_INSPECT(reserve_done, x.job, x.result)
VB_INSPECT(reserve_retry, x.job)
VB_INSPECT(release_done, x.key, x.session_id, x.attempt, x.answered,
                   x.deleted, x.lingering)
VB_INSPECT(release_retry, x.key, x.session_id, x.attempt, x.lingering)
VB_INSPECT(settle_done, x.id, x.attempt, x.result)
VB_INSPECT(settle_retry, x.id, x.attempt)

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tick&) {
  return f(caf::meta::type_name("vb::cluster::tick"));
}

} // namespace vb::cluster_detail

// After the server's own blocks: adding one here moves no other id.
CAF_BEGIN_TYPE_ID_BLOCK(vb_cluster, caf::id_block::vb_actors::end)
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::txn_done))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::watch_msg))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::resync_done))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::lease_event))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::campaign_done))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::tick))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::links_watch))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::links_read))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::links_lookup))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::links_resend))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::reserve_done))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::reserve_retry))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::release_done))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::release_retry))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::settle_done))
  CAF_ADD_TYPE_ID(vb_cluster, (vb::cluster_detail::settle_retry))
CAF_END_TYPE_ID_BLOCK(vb_cluster)
