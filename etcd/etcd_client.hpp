// The etcd client of cluster mode (design cluster-etcd.md §4.3): etcd v3's
// JSON gateway (`POST /v3/...`, HTTP/1.1) on Beast, on the client's own I/O
// thread, like link/http_client; a unary call's attempt is the same round
// trip as the provider link's (link/round_trip.hpp). Keys and values are
// plain strings here; the client does the base64 of the wire itself.
//
// - Unary calls (range, put, delete_range, txn, lease grant / revoke /
//   keepalive / timetolive, maintenance status) each have ONE deadline. On a
//   connection error, an attempt timeout or gRPC code 14 (unavailable) the
//   call moves to the next endpoint and retries within that deadline; any
//   other error comes back as an `etcd_error` with its code and message.
//   A txn with compares and writes is the exception: once sent, it is never
//   sent again (its first attempt may have applied, and a second would fail
//   its own compares); a missing answer ends it with `unavailable` and the
//   outcome is the caller's to settle.
// - Watches: one streaming `POST /v3/watch` per watch, split on '\n' (never
//   one chunk = one message). A streamed error object or a cut stream makes
//   it reconnect to the next endpoint, after a short backoff, from
//   last_revision + 1. A compaction ends the watch with `compacted`: the
//   caller resyncs (range) and watches again.
// - Lease keepers: grant, renew every TTL/3, retry a failed renewal until
//   the TTL has run out since the last success, then report the lease lost.
//
// Every callback is called exactly once (watch and keeper callbacks: as
// often as there is something to say), on the client's I/O thread, never
// inline from the call. Calls never block the caller. Beast stays out of
// this header: the implementation hides behind a pimpl. No CAF.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vb::etcd {

/// What went wrong with a call.
enum class errc : uint8_t {
  none = 0,
  unavailable,    // no endpoint answered before the deadline (`code` is 14
                  // when one of them answered code 14)
  server,         // etcd answered an error: `code` (gRPC) and `message`
  bad_answer,     // an answer that is not etcd's JSON
  bad_request,    // refused before sending (e.g. no endpoints)
  client_stopped, // the client was destroyed first
  refused,        // etcd refused this client: TLS (its certificate, our CA
                  // or client certificate) or authentication (user,
                  // password); a setting to mend, never retried
};

/// "none", "unavailable", ... (for logs and test output).
const char* to_string(errc x);

/// gRPC codes etcd uses in its errors (the `code` of an etcd_error).
namespace grpc {
constexpr int invalid_argument = 3;
constexpr int not_found = 5;
constexpr int permission_denied = 7;
constexpr int failed_precondition = 9;
constexpr int out_of_range = 11; // e.g. "required revision has been compacted"
constexpr int unavailable = 14;
constexpr int unauthenticated = 16; // e.g. "invalid auth token"
} // namespace grpc

struct etcd_error {
  errc kind = errc::none;
  int code = 0;        // the gRPC code when kind == server
  int http_status = 0; // the HTTP status of the last answer, if any
  std::string message;

  explicit operator bool() const {
    return kind != errc::none;
  }
};

struct key_value {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

/// The smallest key after every key that starts with `prefix` (etcd's
/// range_end for a prefix); "\0" (all keys) for an empty prefix.
std::string prefix_end(const std::string& prefix);

std::string base64_encode(const std::string& s);
/// False on bad base64.
bool base64_decode(const std::string& s, std::string& out);

// -- requests and results ---------------------------------------------------------

struct range_request {
  std::string key;
  std::string range_end; // empty: only `key`
  bool prefix = false;   // range_end = prefix_end(key)
  int64_t revision = 0;  // 0: the latest
  int64_t limit = 0;
  bool keys_only = false;
  bool count_only = false;
  bool serializable = false;
};

struct range_result {
  etcd_error error;
  int64_t revision = 0; // the header's
  std::vector<key_value> kvs;
  int64_t count = 0;
  bool more = false;
};

struct put_request {
  std::string key;
  std::string value;
  int64_t lease = 0;
  bool prev_kv = false;
};

struct put_result {
  etcd_error error;
  int64_t revision = 0;
  std::optional<key_value> prev_kv;
};

struct delete_request {
  std::string key;
  std::string range_end;
  bool prefix = false;
  bool prev_kv = false;
};

struct delete_result {
  etcd_error error;
  int64_t revision = 0;
  int64_t deleted = 0;
  std::vector<key_value> prev_kvs;
};

enum class compare_target : uint8_t { value, version, create, mod, lease };
enum class compare_result : uint8_t { equal, not_equal, greater, less };

/// One compare of a txn: `key`'s target against `value` (target value) or
/// `number` (version, create/mod revision, lease).
struct compare {
  std::string key;
  compare_target target = compare_target::value;
  compare_result result = compare_result::equal;
  std::string value;
  int64_t number = 0;
};

/// One operation of a txn's success or failure list.
struct txn_op {
  enum class kind : uint8_t { put, range, del };
  kind op = kind::put;
  put_request put;
  range_request range;
  delete_request del;

  static txn_op make(put_request r);
  static txn_op make(range_request r);
  static txn_op make(delete_request r);
};

struct txn_request {
  std::vector<compare> compares;
  std::vector<txn_op> success;
  std::vector<txn_op> failure;
};

/// The answer of one txn_op (the member that matches `op` is set).
struct txn_op_result {
  txn_op::kind op = txn_op::kind::put;
  put_result put;
  range_result range;
  delete_result del;
};

struct txn_result {
  etcd_error error;
  int64_t revision = 0;
  bool succeeded = false; // etcd leaves the field out when false
  std::vector<txn_op_result> responses;
};

struct lease_result {
  etcd_error error;
  int64_t revision = 0;
  int64_t id = 0;
  int64_t ttl = 0; // keepalive: 0 when the lease is unknown or expired
};

struct lease_ttl_result {
  etcd_error error;
  int64_t revision = 0;
  int64_t id = 0;
  int64_t ttl = -1; // -1: the lease is unknown or expired
  int64_t granted_ttl = 0;
  std::vector<std::string> keys;
};

struct status_result {
  etcd_error error;
  int64_t revision = 0;
  std::string version;
  int64_t db_size = 0;
  uint64_t member_id = 0;
  uint64_t leader = 0;
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
};

// -- watches ------------------------------------------------------------------------

enum class event_type : uint8_t { put, del };

struct watch_event {
  event_type type = event_type::put;
  key_value kv; // a DELETE's kv has the key and mod_revision
  std::optional<key_value> prev_kv;
};

struct watch_request {
  std::string key;
  std::string range_end;
  bool prefix = true;
  int64_t start_revision = 0; // 0: from now
  bool prev_kv = true;
  bool progress_notify = true;
};

/// What a watch reports.
struct watch_update {
  enum class kind : uint8_t {
    created,   // the (re)created watch is live; `revision` is the header's
    events,    // `events`, in revision order
    progress,  // nothing up to `revision` was missed
    broken,    // the stream broke (`message`); it reconnects by itself
    compacted, // revisions up to `compact_revision` are gone: the watch
               // has ended; resync with a range and watch again
  };
  kind what = kind::events;
  int64_t revision = 0;
  std::vector<watch_event> events;
  int64_t compact_revision = 0;
  std::string message;
};

// -- lease keeper -------------------------------------------------------------------

/// What a lease keeper shares with any thread. `since_renewal` lets a
/// caller self-fence (at 0.7·TTL) without a round trip to the I/O thread.
class lease_status {
public:
  /// The lease id, 0 until granted.
  int64_t id() const {
    return id_.load();
  }
  /// The time since the last successful grant or renewal (measured from
  /// when that request was sent: the lease lives at least TTL from then);
  /// nullopt before the first grant.
  std::optional<std::chrono::milliseconds> since_renewal() const;
  bool lost() const {
    return lost_.load();
  }

  // For the client (set on its I/O thread).
  std::atomic<int64_t> id_{0};
  std::atomic<int64_t> last_ok_ns_{0}; // steady_clock; 0: never
  std::atomic<bool> lost_{false};
};

// -- the client ---------------------------------------------------------------------

struct etcd_options {
  /// "http://127.0.0.1:2379", or "https://..." with `ca_file`.
  std::vector<std::string> endpoints;
  /// TLS to https endpoints: the CA that signed etcd's certificates (the
  /// system's are never trusted), and this client's certificate and key
  /// (etcd's --client-cert-auth), PEM files.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  /// etcd's authentication (empty user: none): a token from
  /// /v3/auth/authenticate goes with every call, and is asked for again
  /// when etcd says it is invalid (expired, or etcd restarted).
  std::string user;
  std::string password;
  /// One attempt on one endpoint ends after this (then the next endpoint).
  std::chrono::milliseconds attempt_timeout{2000};
  /// After every endpoint failed once, wait this before the next round.
  std::chrono::milliseconds retry_pause{50};
  /// A watch reconnects after this, doubled up to `watch_backoff_max`.
  std::chrono::milliseconds watch_backoff{100};
  std::chrono::milliseconds watch_backoff_max{2000};
  /// Answers (and single watch messages) larger than this are a bad answer
  /// (a watch reconnects).
  std::size_t max_body_bytes = 16 * 1024 * 1024;
};

/// Splits "http://a:1,http://b:2" into endpoints (spaces trimmed).
std::vector<std::string> split_endpoints(const std::string& list);

class etcd_client {
public:
  template <class T>
  using callback = std::function<void(T)>;
  using watch_callback = std::function<void(const watch_update&)>;
  using clock = std::chrono::steady_clock;

  /// Starts the I/O thread. Endpoints that are not http(s) URLs, https
  /// without a CA, or TLS files that do not load make every call fail with
  /// bad_request (config_error() says why).
  explicit etcd_client(etcd_options options);

  /// Stops the I/O thread. Calls in flight end with client_stopped (on the
  /// destroying thread); watches and keepers end silently. Do not destroy
  /// it from one of its callbacks.
  virtual ~etcd_client();

  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  virtual void range(range_request r, std::chrono::milliseconds timeout,
                     callback<range_result> done);
  virtual void put(put_request r, std::chrono::milliseconds timeout,
                   callback<put_result> done);
  virtual void delete_range(delete_request r, std::chrono::milliseconds timeout,
                            callback<delete_result> done);
  virtual void txn(txn_request r, std::chrono::milliseconds timeout,
                   callback<txn_result> done);
  virtual void lease_grant(int64_t ttl_seconds,
                           std::chrono::milliseconds timeout,
                           callback<lease_result> done);
  virtual void lease_revoke(int64_t id, std::chrono::milliseconds timeout,
                            callback<lease_result> done);
  /// The unary form (one request, one answer); ttl 0 = lease gone.
  virtual void lease_keepalive(int64_t id, std::chrono::milliseconds timeout,
                               callback<lease_result> done);
  virtual void lease_time_to_live(int64_t id, bool keys,
                                  std::chrono::milliseconds timeout,
                                  callback<lease_ttl_result> done);
  virtual void status(std::chrono::milliseconds timeout,
                      callback<status_result> done);
  /// Compacts the history up to `revision` (watches from before it end
  /// with `compacted`); the result's revision is the header's.
  virtual void compact(int64_t revision, std::chrono::milliseconds timeout,
                       callback<put_result> done);

  /// Starts a watch; returns its id (for cancel_watch).
  virtual uint64_t watch(watch_request r, watch_callback on_update);
  /// Ends a watch: no callback after the cancel has run on the I/O thread.
  virtual void cancel_watch(uint64_t id);

  /// Grants a lease of `ttl` and keeps it: renewals every TTL/3, a failed
  /// one retried (rotating endpoints) until TTL has passed since the last
  /// success; then `on_lost(id)` and the keeper ends. A keepalive answer
  /// saying the lease is gone ends it at once. A failed grant is retried
  /// every TTL/3 until it succeeds (`on_granted(id)`) or the keeper stops.
  /// Returns the keeper's id and its shared status.
  virtual std::pair<uint64_t, std::shared_ptr<const lease_status>>
  keep_lease(std::chrono::seconds ttl, std::function<void(int64_t)> on_granted,
             std::function<void(int64_t)> on_lost);
  /// Stops a keeper (no more callbacks), revoking its lease when asked.
  virtual void stop_keeper(uint64_t id, bool revoke);

  /// Why every call fails (bad endpoints or TLS files), or empty.
  std::string config_error() const;

  struct impl; // opaque: Beast and Asio stay in etcd/*.cpp

protected:
  /// For test doubles (tests/scripted_etcd.hpp), which override every call
  /// above: no I/O thread, no endpoints (impl_ stays null, and the
  /// destructor does nothing then). The real calls are never reached on a
  /// double.
  etcd_client() = default;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace vb::etcd
