#include "actors/cluster.hpp"

#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/stats.hpp"
#include "cluster/etcd_client.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/snapshot_codec.hpp"

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
/// A broadcast line to try again on one instance.
struct links_resend {
  std::string addr;
  caf::message msg;
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

} // namespace vb::cluster_detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::txn_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::watch_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::resync_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::lease_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::campaign_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::tick)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::links_watch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::links_read)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::links_lookup)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::links_resend)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::reserve_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::reserve_retry)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::release_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::release_retry)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::settle_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vb::cluster_detail::settle_retry)

namespace vb {

using namespace cluster_detail;
using json = nlohmann::json;
using std::chrono::milliseconds;

namespace {

/// etcd's limit on the operations of one transaction (--max-txn-ops), less
/// room for the fence, and a byte budget under its 1.5 MiB request limit.
constexpr size_t max_txn_ops = 120;
constexpr size_t max_txn_bytes = 1024 * 1024;
/// A commit that etcd has not answered by then fails (503): within about
/// 3 s without quorum (design §4.4), where etcd itself would wait ~7 s.
constexpr milliseconds txn_timeout{3000};
constexpr milliseconds read_timeout{5000};

bool plain_byte(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
         || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '~'
         || c == ':' || c == '@' || c == '-';
}

void escape_into(std::string& out, const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (plain_byte(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

bool unescape(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size())
      return false;
    auto digit = [](char c) -> int {
      if (c >= '0' && c <= '9')
        return c - '0';
      if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
      if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
      return -1;
    };
    int hi = digit(s[i + 1]);
    int lo = digit(s[i + 2]);
    if (hi < 0 || lo < 0)
      return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// Reads every key under `prefix` at one revision (0: the latest, then the
/// first page's), a page at a time, on the client's thread.
void range_all(std::shared_ptr<etcd::etcd_client> client, std::string prefix,
               int64_t revision,
               std::function<void(etcd::etcd_error, int64_t,
                                  std::vector<etcd::key_value>)>
                 done) {
  struct job {
    std::shared_ptr<etcd::etcd_client> client;
    std::string end;
    int64_t revision;
    std::vector<etcd::key_value> kvs;
    std::function<void(etcd::etcd_error, int64_t, std::vector<etcd::key_value>)>
      done;
  };
  auto j = std::make_shared<job>();
  j->client = client;
  j->end = etcd::prefix_end(prefix);
  j->revision = revision;
  j->done = std::move(done);
  auto next = std::make_shared<std::function<void(std::string)>>();
  *next = [j, next](std::string from) {
    etcd::range_request r;
    r.key = std::move(from);
    r.range_end = j->end;
    r.revision = j->revision;
    r.limit = 1000;
    j->client->range(r, read_timeout, [j, next](etcd::range_result res) {
      if (res.error) {
        auto done = std::move(j->done);
        *next = nullptr; // breaks the cycle
        done(res.error, 0, {});
        return;
      }
      if (j->revision == 0)
        j->revision = res.revision;
      for (auto& kv : res.kvs)
        j->kvs.push_back(std::move(kv));
      if (res.more && !j->kvs.empty()) {
        (*next)(j->kvs.back().key + std::string(1, '\0'));
        return;
      }
      auto done = std::move(j->done);
      *next = nullptr;
      done({}, j->revision, std::move(j->kvs));
    });
  };
  (*next)(std::move(prefix));
}

/// Waits for a client call at start-up.
template <class R, class Call>
R wait_for(Call call) {
  auto p = std::make_shared<std::promise<R>>();
  auto f = p->get_future();
  call([p](R r) { p->set_value(std::move(r)); });
  return f.get();
}

std::string describe(const etcd::etcd_error& e) {
  std::string s = etcd::to_string(e.kind);
  if (e.code != 0)
    s += " (code " + std::to_string(e.code) + ")";
  if (!e.message.empty())
    s += ": " + e.message;
  return s;
}

} // namespace

// -- context and keys ---------------------------------------------------------

bool cluster_context::writable() const {
  if (lease.load() == 0)
    return false;
  auto* st = status.load();
  if (st == nullptr || st->lost())
    return false;
  auto age = st->since_renewal();
  return age && *age < std::chrono::duration_cast<milliseconds>(ttl) * 7 / 10;
}

std::string cluster_key(const std::string& owner_prefix,
                        const std::string& parent, const std::string& key) {
  std::string k = owner_prefix;
  if (!parent.empty()) {
    escape_into(k, parent);
    k += '/';
  }
  escape_into(k, key);
  return k;
}

bool split_cluster_key(const std::string& owner_prefix,
                       const std::string& etcd_key, std::string& parent,
                       std::string& key) {
  if (etcd_key.compare(0, owner_prefix.size(), owner_prefix) != 0)
    return false;
  std::string_view rest{etcd_key};
  rest.remove_prefix(owner_prefix.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    parent.clear();
    return !rest.empty() && unescape(rest, key);
  }
  if (rest.find('/', slash + 1) != std::string_view::npos)
    return false;
  return unescape(rest.substr(0, slash), parent) && !parent.empty()
         && unescape(rest.substr(slash + 1), key) && !key.empty();
}

std::string cluster_owner(const std::string& file_name) {
  if (file_name.rfind("bot_providers", 0) == 0)
    return "providers";
  if (file_name.rfind("lobbies", 0) == 0)
    return "lobbies";
  return "idempotency";
}

namespace {

std::string owner_prefix(const cluster_context& ctx, const std::string& owner) {
  return ctx.prefix + owner + "/";
}

/// The key of a join's name (store_claim): PREFIX joins/<lobby>/<bot>/<nick>.
std::string claim_key(const cluster_context& ctx, const std::string& lobby_id,
                      const std::string& bot, const std::string& nick) {
  std::string k = ctx.prefix + "joins/";
  escape_into(k, lobby_id);
  k += '/';
  escape_into(k, bot);
  k += '/';
  escape_into(k, nick);
  return k;
}

/// A reservation's value while its join is dispatched (under the lease).
std::string reservation_value(const cluster_context& ctx,
                              const std::string& session_id) {
  return json{{"state", "pending"},
              {"session_id", session_id},
              {"owner", ctx.instance_id},
              {"at", unix_now()}}
    .dump();
}

/// A pending reservation older than this is taken over (its join cannot
/// still be dispatching: every failover attempt and the commit are far
/// shorter; its instance lost the answer or could not give it back).
constexpr double stale_reservation_s = 60;

/// Its value once the member is committed (no lease): the member's session.
std::string joined_value(const std::string& session_id,
                         const std::string& session) {
  return R"({"state":"joined","session_id":)" + json(session_id).dump()
         + R"(,"session":)" + session + "}";
}

/// How long a join waits for another instance's join of the same name.
constexpr auto reserve_wait = std::chrono::seconds(15);

/// The value an image op puts (the entry's snapshot JSON), or null for a
/// removal.
std::shared_ptr<const std::string> op_value(const image_op& op) {
  if (op.json)
    return op.json;
  if (op.member)
    return std::make_shared<const std::string>(session_json(*op.member));
  return nullptr;
}

} // namespace

// -- start-up -------------------------------------------------------------------

std::string cluster_import_once(
  cluster_context& ctx,
  const std::vector<std::pair<std::string, journal_store_seed*>>& seeds) {
  auto schema = ctx.prefix + "meta/schema";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  for (;;) {
    etcd::range_request get;
    get.key = schema;
    auto got = wait_for<etcd::range_result>(
      [&](auto cb) { ctx.client->range(get, read_timeout, cb); });
    if (got.error)
      return "reading " + schema + ": " + describe(got.error);
    if (!got.kvs.empty()) {
      auto v = json::parse(got.kvs[0].value, nullptr, false);
      if (v.is_object() && v.contains("imported_at"))
        return {}; // imported before (by us or another instance)
      // Another instance is importing (under its lease): wait for it.
      if (std::chrono::steady_clock::now() > deadline)
        return "another instance has been importing into etcd for two "
               "minutes: " + got.kvs[0].value;
      std::this_thread::sleep_for(milliseconds(250));
      continue;
    }
    // Take the import: the schema key under our lease, if still absent.
    etcd::txn_request claim;
    claim.compares.push_back(
      {schema, etcd::compare_target::create, etcd::compare_result::equal, {}, 0});
    etcd::put_request mark;
    mark.key = schema;
    mark.value = json{{"version", 1}, {"importing", ctx.instance_id}}.dump();
    mark.lease = ctx.lease.load();
    claim.success.push_back(etcd::txn_op::make(mark));
    auto claimed = wait_for<etcd::txn_result>(
      [&](auto cb) { ctx.client->txn(claim, read_timeout, cb); });
    if (claimed.error)
      return "claiming the import: " + describe(claimed.error);
    if (!claimed.succeeded)
      continue; // someone else was first
    size_t entries = 0;
    etcd::txn_request chunk;
    auto send = [&]() -> std::string {
      if (chunk.success.empty())
        return {};
      auto r = wait_for<etcd::txn_result>(
        [&](auto cb) { ctx.client->txn(chunk, read_timeout, cb); });
      chunk.success.clear();
      if (r.error)
        return "importing: " + describe(r.error);
      return {};
    };
    size_t bytes = 0;
    for (auto& [owner, seed] : seeds) {
      auto prefix = owner_prefix(ctx, owner);
      // The seed's image is not shared with a store: capture, then settle.
      auto& image = seed->image;
      auto captured = image.capture();
      for (auto& [order, e] : *captured) {
        std::shared_ptr<const std::string> value
          = e->json ? e->json
            : e->member
              ? std::make_shared<const std::string>(session_json(*e->member))
              : nullptr;
        if (!value)
          continue;
        etcd::put_request p;
        p.key = cluster_key(prefix, std::string{e->parent()},
                            std::string{e->key()});
        p.value = *value;
        bytes += p.key.size() + p.value.size();
        chunk.success.push_back(etcd::txn_op::make(std::move(p)));
        ++entries;
        if (chunk.success.size() >= max_txn_ops || bytes >= max_txn_bytes) {
          if (auto err = send(); !err.empty())
            return err;
          bytes = 0;
        }
      }
      image.settle();
    }
    if (auto err = send(); !err.empty())
      return err;
    etcd::put_request done;
    done.key = schema;
    done.value = json{{"version", 1},
                      {"imported_at", unix_now()},
                      {"by", ctx.instance_id},
                      {"entries", entries}}
                   .dump();
    auto r = wait_for<etcd::put_result>(
      [&](auto cb) { ctx.client->put(done, read_timeout, cb); });
    if (r.error)
      return "finishing the import: " + describe(r.error);
    spdlog::info("cluster: imported {} entries of the data directory into "
                 "etcd (the first start on this etcd)",
                 entries);
    return {};
  }
}

std::string cluster_load(
  cluster_context& ctx,
  const std::vector<std::pair<std::string, image_renderer>>& owners,
  std::vector<std::string>& texts, int64_t& revision) {
  revision = 0;
  texts.clear();
  for (auto& [owner, render] : owners) {
    auto prefix = owner_prefix(ctx, owner);
    struct loaded {
      etcd::etcd_error error;
      int64_t revision = 0;
      std::vector<etcd::key_value> kvs;
    };
    auto p = std::make_shared<std::promise<loaded>>();
    auto f = p->get_future();
    range_all(ctx.client, prefix, revision,
              [p](etcd::etcd_error e, int64_t rev,
                  std::vector<etcd::key_value> kvs) {
                p->set_value(loaded{std::move(e), rev, std::move(kvs)});
              });
    auto got = f.get();
    if (got.error)
      return "reading " + prefix + ": " + describe(got.error);
    revision = got.revision;
    store_image image;
    image.reserve(got.kvs.size());
    size_t skipped = 0;
    for (auto& kv : got.kvs) {
      std::string parent, key;
      if (!split_cluster_key(prefix, kv.key, parent, key)) {
        ++skipped;
        continue;
      }
      image.apply(image_op{std::move(parent), std::move(key),
                           std::make_shared<const std::string>(
                             std::move(kv.value))});
    }
    if (skipped > 0)
      spdlog::warn("cluster: {} keys under {} are not entries; ignored",
                   skipped, prefix);
    texts.push_back(render(*image.capture(), 0));
    image.settle();
    spdlog::info("cluster: read {} entries of {} at revision {}",
                 got.kvs.size() - skipped, prefix, revision);
  }
  return {};
}

std::string stored_instance_id(const std::string& data_dir, std::string& error) {
  auto path = data_dir + "/instance_id";
  {
    std::ifstream in{path};
    std::string id;
    if (in && std::getline(in, id) && !id.empty())
      return id;
  }
  ::mkdir(data_dir.c_str(), 0755);
  std::mt19937_64 rng{std::random_device{}()};
  auto id = "i-" + new_uuid(rng).substr(0, 8);
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << id << "\n";
    if (!out.flush()) {
      error = "cannot write " + tmp;
      return {};
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + tmp + " to " + path;
    return {};
  }
  return id;
}

// -- the store ----------------------------------------------------------------------

namespace {

struct etcd_store_state {
  static inline constexpr const char* name = "etcd-store";

  struct queued {
    store_batch batch;
    caf::typed_response_promise<uint64_t> rp;
    bool has_rp = false;
    /// Sent in a transaction of its own (after a shared one failed on a
    /// condition: each batch's own conditions decide).
    bool solo = false;
  };

  struct reserve_job {
    caf::typed_response_promise<std::string> rp;
    std::string key;
    std::string session_id;
    std::chrono::steady_clock::time_point deadline;
    /// The value it puts; the mod revision of a stale one it takes over.
    std::string value;
    int64_t takeover = 0;
  };
  std::unordered_map<uint64_t, reserve_job> reserving;
  uint64_t next_job = 0;
  /// The reservations this instance holds, by key: (session id, value), for
  /// the commit's compare and the release.
  std::unordered_map<std::string, std::pair<std::string, std::string>> held_names;

  caf::stateful_actor<etcd_store_state>* self = nullptr;
  std::shared_ptr<cluster_context> ctx;
  std::shared_ptr<server_stats> stats;
  std::string owner_name;
  std::string prefix;
  caf::actor owner;
  /// Remote changes that came before the owner was named: kept for it.
  std::vector<remote_batch> early;
  std::deque<queued> queue;
  /// The transaction in flight: its id, what it answers, its keys.
  uint64_t next_txn = 0;
  uint64_t in_flight = 0;
  std::vector<queued> sent;
  std::unordered_set<std::string> sent_keys;
  /// The reservations the transaction in flight commits (key, session).
  std::vector<std::pair<std::string, std::string>> committing_names;
  /// Watch events of keys in flight, held until the commit answers (its
  /// own events must not come back as someone else's).
  std::vector<etcd::watch_event> held;
  /// Keys this instance wrote, with the revision of that write: the watch
  /// event of a revision up to it is ours, or older than ours.
  std::unordered_map<std::string, int64_t> own_rev;
  std::vector<caf::typed_response_promise<uint64_t>> flush_waiting;
  int64_t last_rev = 0;
  uint64_t watch_id = 0;
  uint64_t watch_gen = 0;
  bool resyncing = false;
  bool stopping = false;

  void enqueue(store_batch batch, caf::typed_response_promise<uint64_t> rp,
               bool has_rp) {
    queue.push_back(queued{std::move(batch), std::move(rp), has_rp, false});
    send_next();
  }

  void fail(std::vector<queued>& items, const std::string& why) {
    // Counted before the answers go out (a reader may look at once).
    if (stats)
      stats->cluster_failures += items.size();
    for (auto& q : items)
      if (q.has_rp)
        q.rp.deliver(make_error(ec::storage_failed, "cluster store: " + why));
  }

  void send_next() {
    if (in_flight != 0 || queue.empty()) {
      settle();
      return;
    }
    if (!ctx->writable()) {
      std::vector<queued> items(std::make_move_iterator(queue.begin()),
                                std::make_move_iterator(queue.end()));
      queue.clear();
      fail(items, "etcd is unavailable or this instance holds no live lease "
                  "(retry later)");
      settle();
      return;
    }
    etcd::txn_request txn;
    // The fence: the instance key still holds our live lease.
    txn.compares.push_back({ctx->instance_key(), etcd::compare_target::lease,
                            etcd::compare_result::equal, {},
                            ctx->lease.load()});
    // Later ops of a key replace earlier ones (etcd refuses a key twice in
    // one transaction); the order of first appearance is kept.
    std::vector<std::pair<std::string, std::shared_ptr<const std::string>>> ops;
    std::unordered_map<std::string, size_t> at;
    size_t bytes = 0;
    sent.clear();
    sent_keys.clear();
    committing_names.clear();
    while (!queue.empty()) {
      auto& next = queue.front();
      size_t n = 0;
      for (auto& c : next.batch)
        n += c.ops.size();
      // A batch alone past the limit goes in parts (heartbeat records only
      // grow so large; their order within the batch does not matter).
      if (!sent.empty()
          && (next.solo || ops.size() + n > max_txn_ops || bytes > max_txn_bytes))
        break;
      auto item = std::move(next);
      queue.pop_front();
      store_batch rest;
      for (auto& c : item.batch) {
        if (ops.size() >= max_txn_ops || bytes > max_txn_bytes) {
          rest.push_back(std::move(c));
          continue;
        }
        auto add = [&](std::string key, std::shared_ptr<const std::string> value) {
          bytes += key.size() + (value ? value->size() : 0);
          if (auto i = at.find(key); i != at.end()) {
            ops[i->second].second = std::move(value);
          } else {
            at.emplace(key, ops.size());
            ops.emplace_back(std::move(key), std::move(value));
          }
        };
        for (auto& op : c.ops)
          add(cluster_key(prefix, op.parent, op.key), op_value(op));
        for (auto& claim : c.claims) {
          auto key = claim_key(*ctx, claim.lobby_id, claim.bot_name, claim.nick);
          if (!claim.session) {
            add(std::move(key), nullptr); // a leave gives the name back
            continue;
          }
          // A join commits its reservation, if it is still its own (a
          // value no reservation has when it is not).
          auto h = held_names.find(key);
          txn.compares.push_back(
            {key, etcd::compare_target::value, etcd::compare_result::equal,
             h != held_names.end() && h->second.first == claim.session_id
               ? h->second.second
               : std::string{"(not reserved here)"},
             0});
          committing_names.emplace_back(key, claim.session_id);
          add(std::move(key), std::make_shared<const std::string>(joined_value(
                                claim.session_id, *claim.session)));
        }
      }
      if (!rest.empty()) {
        // The promise goes with the last part.
        queue.push_front(
          queued{std::move(rest), std::move(item.rp), item.has_rp, item.solo});
        item.has_rp = false;
        sent.push_back(std::move(item));
        break;
      }
      bool solo = item.solo;
      sent.push_back(std::move(item));
      if (solo)
        break;
    }
    for (auto& [key, value] : ops) {
      sent_keys.insert(key);
      if (value) {
        etcd::put_request p;
        p.key = key;
        p.value = *value;
        txn.success.push_back(etcd::txn_op::make(std::move(p)));
      } else {
        etcd::delete_request d;
        d.key = key;
        txn.success.push_back(etcd::txn_op::make(std::move(d)));
      }
    }
    if (txn.success.empty()) {
      // Only empty batches (a flush): nothing to commit.
      for (auto& q : sent)
        if (q.has_rp)
          q.rp.deliver(static_cast<uint64_t>(last_rev));
      sent.clear();
      settle();
      return;
    }
    in_flight = ++next_txn;
    auto me = caf::actor_cast<caf::actor>(self);
    auto id = in_flight;
    ctx->client->txn(std::move(txn), txn_timeout,
                     [me, id](etcd::txn_result r) {
                       caf::anon_send(me, txn_done{id, std::move(r)});
                     });
  }

  void committed(txn_done& d) {
    if (d.id != in_flight)
      return;
    in_flight = 0;
    auto& r = d.result;
    if (!r.error && !r.succeeded && sent.size() > 1) {
      // A condition of the shared transaction failed: each batch again on
      // its own, so that one lost reservation fails only its own join.
      for (auto i = sent.rbegin(); i != sent.rend(); ++i) {
        i->solo = true;
        queue.push_front(std::move(*i));
      }
      return next_after_commit();
    }
    if (r.error && !committing_names.empty()) {
      // etcd did not answer: the commit may still apply. Its joins' names
      // decide (design §4.6, indeterminate outcomes): see settle().
      if (r.error.kind == etcd::errc::unavailable)
        ctx->failed_ns = steady_ns();
      in_flight = d.id;
      return settle(d.id, 0);
    }
    finish_commit(r);
  }

  /// A commit etcd did not answer, with joins in it: the first join's
  /// reservation is marked taken back (if it is still pending, the commit,
  /// which compares it, can never apply: failed), or it already holds the
  /// member (the commit applied: done). Retried while etcd does not answer.
  void settle(uint64_t id, int attempt) {
    auto [key, sid] = committing_names.front();
    auto h = held_names.find(key);
    if (h == held_names.end() || h->second.first != sid) {
      etcd::txn_result failed;
      failed.error.kind = etcd::errc::unavailable;
      failed.error.message = "the outcome is unknown";
      return finish_commit(failed);
    }
    etcd::txn_request t;
    t.compares.push_back({key, etcd::compare_target::value,
                          etcd::compare_result::equal, h->second.second, 0});
    auto taken_back = json::parse(h->second.second, nullptr, false);
    taken_back["taken_back"] = true;
    etcd::put_request p;
    p.key = key;
    p.value = taken_back.dump();
    p.lease = ctx->lease.load();
    t.success.push_back(etcd::txn_op::make(std::move(p)));
    etcd::range_request r;
    r.key = key;
    t.failure.push_back(etcd::txn_op::make(std::move(r)));
    auto me = caf::actor_cast<caf::actor>(self);
    ctx->client->txn(std::move(t), txn_timeout,
                     [me, id, attempt](etcd::txn_result res) {
                       caf::anon_send(me, settle_done{id, attempt, std::move(res)});
                     });
  }

  void settled(settle_done& d) {
    if (d.id != in_flight)
      return;
    auto [key, sid] = committing_names.front();
    auto& r = d.result;
    auto h = held_names.find(key);
    if (r.error) {
      if (d.attempt < 20) {
        self->delayed_send(self, std::chrono::milliseconds(500),
                           settle_retry{d.id, d.attempt + 1});
        return;
      }
      etcd::txn_result failed;
      failed.error = r.error;
      failed.error.message = "the outcome is unknown: " + r.error.message;
      return finish_commit(failed);
    }
    if (r.succeeded) {
      // Taken back: the commit can never apply. The name is given back.
      if (h != held_names.end() && h->second.first == sid) {
        auto v = json::parse(h->second.second, nullptr, false);
        v["taken_back"] = true;
        h->second.second = v.dump();
        release(key, sid, 0);
      }
      etcd::txn_result failed;
      failed.error.kind = etcd::errc::unavailable;
      failed.error.message = "etcd did not answer in time; nothing applied";
      return finish_commit(failed);
    }
    const etcd::key_value* kv = nullptr;
    if (!r.responses.empty() && !r.responses[0].range.kvs.empty())
      kv = &r.responses[0].range.kvs[0];
    auto v = kv ? json::parse(kv->value, nullptr, false) : json{};
    if (v.is_object() && v.value("state", "") == "joined"
        && v.value("session_id", "") == sid) {
      etcd::txn_result applied;
      applied.succeeded = true;
      applied.revision = kv->mod_revision;
      spdlog::info("cluster: a commit etcd did not answer had applied "
                   "(revision {})", kv->mod_revision);
      return finish_commit(applied);
    }
    // Neither ours nor the member: the commit cannot apply. Ours taken
    // back by an earlier try that etcd did not answer: given back.
    if (v.is_object() && v.value("session_id", "") == sid && h != held_names.end()
        && h->second.first == sid) {
      h->second.second = kv->value;
      release(key, sid, 0);
    }
    etcd::txn_result failed;
    failed.succeeded = false;
    return finish_commit(failed);
  }

  void finish_commit(const etcd::txn_result& r) {
    in_flight = 0;
    if (r.error || !r.succeeded) {
      std::string why;
      if (r.error) {
        why = "etcd did not commit: " + describe(r.error);
        if (r.error.kind == etcd::errc::unavailable)
          ctx->failed_ns = steady_ns();
      } else {
        why = "a condition failed: this instance's lease is gone (fenced "
              "until it has a new one), or a join's reservation was lost";
      }
      spdlog::warn("cluster: {} commit of {} changes failed: {}", owner_name,
                   sent.size(), why);
      fail(sent, why);
    } else {
      for (auto& k : sent_keys) {
        auto& rev = own_rev[k];
        rev = std::max(rev, r.revision);
      }
      if (stats)
        ++stats->cluster_commits;
      for (auto& q : sent)
        if (q.has_rp)
          q.rp.deliver(static_cast<uint64_t>(r.revision));
      // Committed names are members' now, no longer reservations.
      for (auto& [key, sid] : committing_names)
        if (auto h = held_names.find(key);
            h != held_names.end() && h->second.first == sid)
          held_names.erase(h);
      ctx->failed_ns = 0;
    }
    next_after_commit();
  }

  /// The transaction in flight is over: the events held for its keys go
  /// on (ours are recognised now), then the next one.
  void next_after_commit() {
    sent.clear();
    sent_keys.clear();
    auto events = std::move(held);
    held.clear();
    forward(events);
    send_next();
  }

  /// Answers flushes once nothing is queued or in flight; stops when asked.
  void settle() {
    if (in_flight != 0 || !queue.empty())
      return;
    for (auto& rp : flush_waiting)
      rp.deliver(static_cast<uint64_t>(last_rev));
    flush_waiting.clear();
    if (stopping)
      self->quit();
  }

  /// Hands the other instances' changes among `events` to the owner.
  void forward(std::vector<etcd::watch_event>& events) {
    remote_batch batch;
    for (auto& ev : events) {
      auto& key = ev.kv.key;
      if (in_flight != 0 && sent_keys.count(key) != 0) {
        held.push_back(std::move(ev));
        continue;
      }
      auto rev = ev.kv.mod_revision;
      if (auto i = own_rev.find(key); i != own_rev.end()) {
        auto mine = i->second;
        if (rev >= mine)
          own_rev.erase(i);
        if (rev <= mine)
          continue; // our own write, or one ours replaced
      }
      remote_change c;
      if (!split_cluster_key(prefix, key, c.parent, c.key))
        continue;
      if (ev.type == etcd::event_type::put)
        c.json = std::make_shared<const std::string>(std::move(ev.kv.value));
      batch.changes.push_back(std::move(c));
    }
    if (batch.changes.empty())
      return;
    if (stats)
      stats->cluster_remote_changes += batch.changes.size();
    hand_over(std::move(batch));
  }

  void hand_over(remote_batch batch) {
    if (owner)
      caf::anon_send(owner, atom::remote_v, std::move(batch));
    else
      early.push_back(std::move(batch));
  }

  void watch_from(int64_t revision) {
    etcd::watch_request w;
    w.key = prefix;
    w.prefix = true;
    w.start_revision = revision;
    w.prev_kv = false;
    auto me = caf::actor_cast<caf::actor>(self);
    auto gen = ++watch_gen;
    watch_id = ctx->client->watch(w, [me, gen](const etcd::watch_update& u) {
      caf::anon_send(me, watch_msg{gen, u});
    });
  }

  void watched(watch_msg& m) {
    if (m.watch != watch_gen)
      return;
    auto& u = m.update;
    switch (u.what) {
      case etcd::watch_update::kind::events:
        for (auto& ev : u.events)
          last_rev = std::max(last_rev, ev.kv.mod_revision);
        forward(u.events);
        break;
      case etcd::watch_update::kind::progress:
      case etcd::watch_update::kind::created:
        last_rev = std::max(last_rev, u.revision);
        break;
      case etcd::watch_update::kind::broken:
        spdlog::debug("cluster: {} watch broken ({}); it resumes", owner_name,
                      u.message);
        break;
      case etcd::watch_update::kind::compacted:
        spdlog::warn("cluster: {} watch fell behind a compaction at revision "
                     "{}: reading the whole state again",
                     owner_name, u.compact_revision);
        resync();
        break;
    }
  }

  /// Takes a join's name for `session_id` (answered ""), or answers the
  /// session of the member that holds it; waits while another instance's
  /// join of it is pending.
  void reserve(uint64_t id) {
    auto i = reserving.find(id);
    if (i == reserving.end())
      return;
    auto& job = i->second;
    if (!ctx->writable()) {
      job.rp.deliver(make_error(ec::storage_failed,
                                "cluster store: etcd is unavailable or this "
                                "instance holds no live lease (retry later)"));
      reserving.erase(i);
      return;
    }
    etcd::txn_request t;
    if (job.takeover != 0)
      t.compares.push_back({job.key, etcd::compare_target::mod,
                            etcd::compare_result::equal, {}, job.takeover});
    else
      t.compares.push_back({job.key, etcd::compare_target::create,
                            etcd::compare_result::equal, {}, 0});
    t.compares.push_back({ctx->instance_key(), etcd::compare_target::lease,
                          etcd::compare_result::equal, {}, ctx->lease.load()});
    job.value = reservation_value(*ctx, job.session_id);
    etcd::put_request p;
    p.key = job.key;
    p.value = job.value;
    p.lease = ctx->lease.load();
    t.success.push_back(etcd::txn_op::make(std::move(p)));
    etcd::range_request r;
    r.key = job.key;
    t.failure.push_back(etcd::txn_op::make(std::move(r)));
    auto me = caf::actor_cast<caf::actor>(self);
    ctx->client->txn(std::move(t), txn_timeout, [me, id](etcd::txn_result res) {
      caf::anon_send(me, reserve_done{id, std::move(res)});
    });
  }

  void reserved(reserve_done& d) {
    auto i = reserving.find(d.job);
    if (i == reserving.end())
      return;
    auto& job = i->second;
    auto answer = [&](caf::expected<std::string> x) {
      if (x)
        job.rp.deliver(std::move(*x));
      else
        job.rp.deliver(x.error());
      reserving.erase(i);
    };
    auto& r = d.result;
    if (r.error) {
      // It may have been applied all the same: given back, to be sure.
      held_names[job.key] = {job.session_id, job.value};
      release(job.key, job.session_id, 0, true);
      return answer(make_error(ec::storage_failed,
                               "cluster store: etcd did not take the join's "
                               "reservation: " + describe(r.error)));
    }
    if (r.succeeded) {
      held_names[job.key] = {job.session_id, job.value};
      return answer(std::string{});
    }
    const etcd::key_value* kv = nullptr;
    if (!r.responses.empty() && !r.responses[0].range.kvs.empty())
      kv = &r.responses[0].range.kvs[0];
    if (kv == nullptr) {
      // The key exists but the range missed it: only our lease failed the
      // compare (the name is free).
      return answer(make_error(ec::storage_failed,
                               "cluster store: this instance holds no live "
                               "lease (retry later)"));
    }
    auto v = json::parse(kv->value, nullptr, false);
    if (v.is_object() && v.value("state", "") == "joined" && v.contains("session"))
      return answer(v["session"].dump());
    if (v.is_object() && v.value("session_id", "") == job.session_id) {
      held_names[job.key] = {job.session_id, kv->value};
      return answer(std::string{}); // ours already
    }
    // A stale reservation is taken over: one of this instance for another
    // session (its lobby runs one join of a name at a time, so that join is
    // over), or anyone's past stale_reservation_s.
    double at = v.is_object() && v.contains("at") && v["at"].is_number()
                  ? v["at"].get<double>()
                  : 0;
    if (v.is_object()
        && (v.value("owner", "") == ctx->instance_id
            || unix_now() - at > stale_reservation_s)) {
      job.takeover = kv->mod_revision;
      return reserve(d.job);
    }
    job.takeover = 0;
    // Pending on another instance: wait for its commit, or for its
    // reservation to go (a failed dispatch, a lost lease).
    if (std::chrono::steady_clock::now() >= job.deadline)
      return answer(make_error(ec::storage_failed,
                               "cluster store: this bot and nick are being "
                               "joined on another instance (retry later)"));
    self->delayed_send(self, std::chrono::milliseconds(100),
                       reserve_retry{d.job});
  }

  /// Gives back a reservation no member holds; retried while etcd does
  /// not answer (a reservation left pending would hold the name until this
  /// instance's lease ends, or stale_reservation_s).
  void release(const std::string& key, const std::string& session_id,
               int attempt, bool lingering = false) {
    auto h = held_names.find(key);
    if (h == held_names.end() || h->second.first != session_id)
      return; // not ours (any more)
    etcd::txn_request t;
    t.compares.push_back({key, etcd::compare_target::value,
                          etcd::compare_result::equal, h->second.second, 0});
    etcd::delete_request d;
    d.key = key;
    t.success.push_back(etcd::txn_op::make(std::move(d)));
    auto me = caf::actor_cast<caf::actor>(self);
    ctx->client->txn(std::move(t), txn_timeout,
                     [me, key, session_id, attempt, lingering](etcd::txn_result r) {
                       caf::anon_send(me, release_done{key, session_id, attempt,
                                                       !r.error, r.succeeded,
                                                       lingering});
                     });
  }

  void released(const release_done& d) {
    if (!d.answered && d.attempt < 300) {
      self->delayed_send(self, std::chrono::seconds(1),
                         release_retry{d.key, d.session_id, d.attempt + 1,
                                       d.lingering});
      return;
    }
    if (d.answered && !d.deleted && d.lingering && d.attempt < 6) {
      // Nothing found yet: a reservation etcd did not answer may still
      // apply; looked for again at 1, 2, 4, 8 and 16 s.
      self->delayed_send(self, std::chrono::seconds(1 << d.attempt),
                         release_retry{d.key, d.session_id, d.attempt + 1,
                                       true});
      return;
    }
    if (auto h = held_names.find(d.key);
        h != held_names.end() && h->second.first == d.session_id)
      held_names.erase(h);
  }

  void resync() {
    if (resyncing)
      return;
    resyncing = true;
    ctx->client->cancel_watch(watch_id);
    ++watch_gen;
    auto me = caf::actor_cast<caf::actor>(self);
    range_all(ctx->client, prefix, 0,
              [me](etcd::etcd_error e, int64_t rev,
                   std::vector<etcd::key_value> kvs) {
                caf::anon_send(me, resync_done{std::move(e), rev, std::move(kvs)});
              });
  }

  void resynced(resync_done& d) {
    resyncing = false;
    if (d.error) {
      spdlog::warn("cluster: {} resync failed ({}); retrying", owner_name,
                   describe(d.error));
      self->delayed_send(self, std::chrono::seconds(1), tick{});
      return;
    }
    remote_batch batch;
    batch.resync = true;
    for (auto& kv : d.kvs) {
      remote_change c;
      if (!split_cluster_key(prefix, kv.key, c.parent, c.key))
        continue;
      c.json = std::make_shared<const std::string>(std::move(kv.value));
      batch.changes.push_back(std::move(c));
    }
    own_rev.clear();
    last_rev = d.revision;
    spdlog::info("cluster: {} resynced: {} entries at revision {}", owner_name,
                 batch.changes.size(), d.revision);
    hand_over(std::move(batch));
    watch_from(d.revision + 1);
  }
};

caf::behavior etcd_store_fn(caf::stateful_actor<etcd_store_state>* self,
                            std::shared_ptr<cluster_context> ctx,
                            std::string owner, int64_t revision,
                            std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.ctx = std::move(ctx);
  st.stats = std::move(stats);
  st.owner_name = owner;
  st.prefix = owner_prefix(*st.ctx, owner);
  st.last_rev = revision;
  st.watch_from(revision + 1);
  self->set_exit_handler([self](caf::exit_msg&) {
    self->state.stopping = true;
    self->state.settle();
  });
  self->attach_functor([ctx = st.ctx, self] {
    // The watch's callbacks end with the actor.
    ctx->client->cancel_watch(self->state.watch_id);
  });
  return {
    [=](atom::write, store_batch& batch) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->state.enqueue(std::move(batch), rp, true);
      return rp;
    },
    [=](atom::write, store_batch& batch, atom::sweep) {
      self->state.enqueue(std::move(batch), {}, false);
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->state.flush_waiting.push_back(rp);
      self->state.settle();
      return rp;
    },
    [=](atom::flush, atom::sweep) { self->state.send_next(); },
    [=](atom::compact) -> caf::result<uint64_t> {
      // etcd keeps the state: no snapshot to write (backups are etcdctl
      // snapshot save).
      return static_cast<uint64_t>(self->state.last_rev);
    },
    [=](atom::stop) {
      self->state.stopping = true;
      self->state.settle();
    },
    [=](atom::peers, caf::actor& owner) {
      auto& st = self->state;
      st.owner = owner;
      for (auto& b : st.early)
        caf::anon_send(owner, atom::remote_v, std::move(b));
      st.early.clear();
    },
    [=](txn_done& d) { self->state.committed(d); },
    [=](watch_msg& m) { self->state.watched(m); },
    [=](resync_done& d) { self->state.resynced(d); },
    [=](tick) { self->state.resync(); },
    [=](atom::reserve, const std::string& lobby_id, const std::string& bot,
        const std::string& nick,
        const std::string& session_id) -> caf::result<std::string> {
      auto& st = self->state;
      auto rp = self->make_response_promise<std::string>();
      auto id = ++st.next_job;
      st.reserving.emplace(
        id, etcd_store_state::reserve_job{
              rp, claim_key(*st.ctx, lobby_id, bot, nick), session_id,
              std::chrono::steady_clock::now() + reserve_wait, {}, 0});
      st.reserve(id);
      return rp;
    },
    [=](reserve_done& d) { self->state.reserved(d); },
    [=](reserve_retry& r) { self->state.reserve(r.job); },
    [=](atom::leave, const std::string& lobby_id, const std::string& bot,
        const std::string& nick, const std::string& session_id) {
      auto& st = self->state;
      st.release(claim_key(*st.ctx, lobby_id, bot, nick), session_id, 0);
    },
    [=](const release_done& d) { self->state.released(d); },
    [=](const release_retry& r) {
      self->state.release(r.key, r.session_id, r.attempt, r.lingering);
    },
    [=](settle_done& d) { self->state.settled(d); },
    [=](const settle_retry& r) { self->state.settle(r.id, r.attempt); },
  };
}

} // namespace

store_actor spawn_etcd_store(caf::actor_system& sys,
                             std::shared_ptr<cluster_context> ctx,
                             std::string owner, int64_t revision,
                             std::shared_ptr<server_stats> stats) {
  auto a = sys.spawn(etcd_store_fn, std::move(ctx), std::move(owner), revision,
                     std::move(stats));
  return caf::actor_cast<store_actor>(a);
}

void set_cluster_owner(const store_actor& store, const caf::actor& owner) {
  caf::anon_send(caf::actor_cast<caf::actor>(store), atom::peers_v, owner);
}

// -- membership -------------------------------------------------------------------

namespace {

struct membership_state {
  static inline constexpr const char* name = "membership";

  caf::stateful_actor<membership_state>* self = nullptr;
  std::shared_ptr<cluster_context> ctx;
  std::shared_ptr<server_stats> stats;
  std::string info;
  uint64_t keeper = 0;
  /// The lease granted and not yet lost (its key may not be written yet).
  int64_t granted = 0;
  std::vector<caf::response_promise> ready;
  bool leader = false;
  bool campaigning = false;
  bool was_writable = false;

  void keep() {
    auto me = caf::actor_cast<caf::actor>(self);
    auto [id, status] = ctx->client->keep_lease(
      ctx->ttl,
      [me](int64_t lease) {
        caf::anon_send(me, lease_event{lease_event::kind::granted, lease, {}});
      },
      [me](int64_t lease) {
        caf::anon_send(me, lease_event{lease_event::kind::lost, lease, {}});
      });
    keeper = id;
    // Kept with the context: the stores read it through `status`.
    ctx->statuses.push_back(status);
    ctx->status = status.get();
  }

  void register_instance(int64_t lease) {
    etcd::put_request p;
    p.key = ctx->instance_key();
    p.value = info;
    p.lease = lease;
    auto me = caf::actor_cast<caf::actor>(self);
    ctx->client->put(p, txn_timeout, [me, lease](etcd::put_result r) {
      caf::anon_send(me, lease_event{r.error
                                       ? lease_event::kind::register_failed
                                       : lease_event::kind::registered,
                                     lease, describe(r.error)});
    });
  }

  void on(lease_event& e) {
    switch (e.what) {
      case lease_event::kind::granted:
        granted = e.lease;
        register_instance(e.lease);
        break;
      case lease_event::kind::registered:
        if (e.lease != granted)
          return;
        ctx->lease = e.lease;
        spdlog::info("cluster: instance {} is live (lease {:x}, TTL {} s)",
                     ctx->instance_id, e.lease, ctx->ttl.count());
        for (auto& rp : ready)
          rp.deliver(e.lease);
        ready.clear();
        update();
        campaign();
        break;
      case lease_event::kind::register_failed:
        if (e.lease != granted)
          return;
        spdlog::warn("cluster: writing {} failed ({}); retrying",
                     ctx->instance_key(), e.message);
        self->delayed_send(self, milliseconds(500),
                           lease_event{lease_event::kind::granted, e.lease, {}});
        break;
      case lease_event::kind::lost:
        if (e.lease != granted)
          return;
        spdlog::error("cluster: lease {:x} lost (etcd unreachable for the "
                      "TTL): fenced, no commit until a new lease is live",
                      e.lease);
        granted = 0;
        ctx->lease = 0;
        leader = false;
        stats->sweeper = false;
        update();
        keep();
        break;
    }
  }

  /// Tries to become the sweeper (the key under our lease, if absent).
  void campaign() {
    auto lease = ctx->lease.load();
    if (leader || campaigning || lease == 0)
      return;
    campaigning = true;
    etcd::txn_request t;
    auto key = ctx->sweeper_key();
    t.compares.push_back(
      {key, etcd::compare_target::create, etcd::compare_result::equal, {}, 0});
    etcd::put_request p;
    p.key = key;
    p.value = ctx->instance_id;
    p.lease = lease;
    t.success.push_back(etcd::txn_op::make(p));
    etcd::range_request r;
    r.key = key;
    t.failure.push_back(etcd::txn_op::make(r));
    auto me = caf::actor_cast<caf::actor>(self);
    auto iid = ctx->instance_id;
    ctx->client->txn(t, txn_timeout, [me, lease, iid](etcd::txn_result res) {
      campaign_done d;
      d.lease = lease;
      if (res.error) {
        d.message = describe(res.error);
      } else if (res.succeeded) {
        d.leader = true;
      } else if (!res.responses.empty()
                 && !res.responses[0].range.kvs.empty()) {
        auto& kv = res.responses[0].range.kvs[0];
        // Ours from before (the same lease): still ours.
        d.leader = kv.lease == lease && kv.value == iid;
      }
      caf::anon_send(me, d);
    });
  }

  void on(campaign_done& d) {
    campaigning = false;
    bool now = d.leader && d.lease == ctx->lease.load() && d.lease != 0;
    if (now != leader)
      spdlog::info("cluster: this instance {} the cleanup sweeper",
                   now ? "is now" : "is no longer");
    leader = now;
    stats->sweeper = leader;
  }

  /// /api/health's "store": a live lease and no commit failing for want of
  /// etcd since its last renewal.
  void update() {
    bool ok = ctx->writable();
    if (ok) {
      auto failed = ctx->failed_ns.load();
      auto* status = ctx->status.load();
      if (failed != 0 && status != nullptr && status->last_ok_ns_.load() < failed)
        ok = false;
    }
    auto* st = ctx->status.load();
    stats->store_fresh_until_ns
      = ok && st != nullptr
          ? st->last_ok_ns_.load()
              + std::chrono::duration_cast<std::chrono::nanoseconds>(ctx->ttl)
                    .count()
                  * 7 / 10
          : 0;
    stats->store = ok ? store_state::ok : store_state::unavailable;
    if (ok != was_writable)
      spdlog::info("cluster: the store is {}", ok ? "available" : "unavailable");
    was_writable = ok;
  }
};

caf::behavior membership_fn(caf::stateful_actor<membership_state>* self,
                            std::shared_ptr<cluster_context> ctx,
                            std::shared_ptr<server_stats> stats,
                            std::string info) {
  auto& st = self->state;
  st.self = self;
  st.ctx = std::move(ctx);
  st.stats = std::move(stats);
  st.info = std::move(info);
  st.stats->sweeper = false;
  st.stats->store = store_state::unavailable;
  st.keep();
  auto period = std::max<milliseconds>(
    milliseconds(200), std::chrono::duration_cast<milliseconds>(st.ctx->ttl) / 10);
  self->delayed_send(self, period, tick{});
  self->attach_functor([ctx = st.ctx, self] {
    // A clean stop hands the instance key and the sweeper on at once.
    ctx->lease = 0;
    ctx->client->stop_keeper(self->state.keeper, true);
  });
  return {
    [=](lease_event& e) { self->state.on(e); },
    [=](campaign_done& d) { self->state.on(d); },
    [=](tick) {
      self->delayed_send(self, period, tick{});
      self->state.update();
      self->state.campaign();
    },
    [=](atom::get) -> caf::result<int64_t> {
      auto lease = self->state.ctx->lease.load();
      if (lease != 0)
        return lease;
      auto rp = self->make_response_promise();
      self->state.ready.push_back(rp);
      return caf::delegated<int64_t>{};
    },
  };
}

// -- CAF provider links ------------------------------------------------------------

struct links_state {
  static inline constexpr const char* name = "cluster-links";

  struct holder {
    std::string instance;
    std::string cluster; // HOST:PORT of its cluster gateway
  };

  caf::stateful_actor<links_state>* self = nullptr;
  std::shared_ptr<cluster_context> ctx;
  std::string cluster;
  std::string prefix;
  /// Links held here, and the lease they were written under.
  std::set<std::string> local;
  int64_t written_lease = 0;
  /// Every instance's links, from the watch.
  std::unordered_map<std::string, holder> table;
  /// Cluster gateways connected so far, by HOST:PORT.
  std::unordered_map<std::string, caf::actor> gateways;
  /// The other instances' cluster gateways (HOST:PORT), by instance id,
  /// for the lines broadcast to every instance (chat, say).
  std::unordered_map<std::string, std::string> peers;
  std::string instances_prefix;
  uint64_t watch_id = 0;
  uint64_t gen = 0;
  uint64_t instances_watch = 0;
  uint64_t instances_gen = 0;

  std::string value() const {
    return json{{"iid", ctx->instance_id}, {"cluster", cluster}}.dump();
  }

  void put(const std::string& id) {
    auto lease = ctx->lease.load();
    if (lease == 0)
      return; // written when the next lease is live
    etcd::put_request p;
    p.key = prefix + id;
    p.value = value();
    p.lease = lease;
    ctx->client->put(p, txn_timeout, [id](etcd::put_result r) {
      if (r.error)
        spdlog::warn("cluster: recording the link of provider {} failed: {}",
                     id, describe(r.error));
    });
  }

  void drop(const std::string& id) {
    // Only our own record: the provider may have registered elsewhere since.
    etcd::txn_request t;
    t.compares.push_back({prefix + id, etcd::compare_target::value,
                          etcd::compare_result::equal, value(), 0});
    etcd::delete_request d;
    d.key = prefix + id;
    t.success.push_back(etcd::txn_op::make(std::move(d)));
    ctx->client->txn(std::move(t), txn_timeout, [](etcd::txn_result) {});
  }

  void apply_instance(const std::string& key, const std::string* v) {
    if (key.compare(0, instances_prefix.size(), instances_prefix) != 0)
      return;
    auto id = key.substr(instances_prefix.size());
    if (id == ctx->instance_id)
      return;
    auto j = v ? json::parse(*v, nullptr, false) : json{};
    if (v == nullptr || !j.is_object() || !j.contains("cluster")
        || !j["cluster"].is_string()) {
      peers.erase(id);
      return;
    }
    auto addr = j["cluster"].get<std::string>();
    auto& known = peers[id];
    if (known != addr) {
      known = addr;
      // Connected now, so that the first line broadcast to it does not
      // wait for the connection (or get lost with it).
      with_gateway(addr, [](caf::actor) {}, [](caf::error) {});
    }
  }

  /// Connects to a cluster gateway (once), then runs `then` with it.
  void with_gateway(const std::string& addr,
                    std::function<void(caf::actor)> then,
                    std::function<void(caf::error)> failed) {
    if (auto g = gateways.find(addr); g != gateways.end())
      return then(g->second);
    auto colon = addr.rfind(':');
    if (colon == std::string::npos)
      return failed(make_error(ec::unavailable, "bad cluster address " + addr));
    auto host = addr.substr(0, colon);
    auto port = static_cast<uint16_t>(std::stoul(addr.substr(colon + 1)));
    self
      ->request(self->system().middleman().actor_handle(), std::chrono::seconds(3),
                caf::connect_atom::value, host, port)
      .then(
        [this, addr, then, failed](const caf::node_id&, caf::strong_actor_ptr& ptr,
                                   const std::set<std::string>&) {
          if (!ptr)
            return failed(make_error(ec::unavailable, "nothing published at " + addr));
          auto gw = caf::actor_cast<caf::actor>(ptr);
          gateways[addr] = gw;
          self->monitor(gw);
          then(gw);
        },
        [addr, failed](caf::error& err) {
          failed(make_error(ec::unavailable, "cannot reach the instance at "
                                               + addr + ": " + caf::to_string(err)));
        });
  }

  /// Sends a line to every other instance, best effort.
  void broadcast(caf::message msg) {
    for (auto& [id, addr] : peers)
      deliver(addr, msg, 0);
  }

  /// One line to one instance; a connection that cannot be made yet (the
  /// instance is starting, the machine is busy) is tried twice more.
  void deliver(const std::string& addr, caf::message msg, int attempt) {
    with_gateway(
      addr, [msg](caf::actor gw) { caf::anon_send(gw, msg); },
      [this, addr, msg, attempt](caf::error err) {
        if (attempt >= 2) {
          spdlog::debug("cluster: a broadcast line was not delivered to {}: {}",
                        addr, caf::to_string(err));
          return;
        }
        self->delayed_send(self, std::chrono::milliseconds(300 * (attempt + 1)),
                           links_resend{addr, msg, attempt + 1});
      });
  }

  void resend(links_resend& m) {
    // Only to an instance that is still there.
    for (auto& [id, addr] : peers)
      if (addr == m.addr)
        return deliver(m.addr, std::move(m.msg), m.attempt);
  }

  void apply(const std::string& key, const std::string* v) {
    if (key.compare(0, prefix.size(), prefix) != 0)
      return;
    auto id = key.substr(prefix.size());
    if (v == nullptr) {
      table.erase(id);
      return;
    }
    auto j = json::parse(*v, nullptr, false);
    if (!j.is_object())
      return;
    table[id] = holder{j.value("iid", ""), j.value("cluster", "")};
  }

  void start(bool instances) {
    auto me = caf::actor_cast<caf::actor>(self);
    range_all(ctx->client, instances ? instances_prefix : prefix, 0,
              [me, instances](etcd::etcd_error e, int64_t rev,
                              std::vector<etcd::key_value> kvs) {
                caf::anon_send(me, links_read{std::move(e), rev, std::move(kvs),
                                              instances});
              });
  }

  void read(links_read& r) {
    if (r.error) {
      spdlog::warn("cluster: reading {} failed ({}); retrying",
                   r.instances ? instances_prefix : prefix, describe(r.error));
      self->delayed_send(self, std::chrono::seconds(1), atom::get_v, r.instances);
      return;
    }
    if (r.instances)
      peers.clear();
    else
      table.clear();
    for (auto& kv : r.kvs) {
      if (r.instances)
        apply_instance(kv.key, &kv.value);
      else
        apply(kv.key, &kv.value);
    }
    etcd::watch_request w;
    w.key = r.instances ? instances_prefix : prefix;
    w.start_revision = r.revision + 1;
    w.prev_kv = false;
    auto me = caf::actor_cast<caf::actor>(self);
    auto g = r.instances ? ++instances_gen : ++gen;
    auto which = r.instances;
    auto id = ctx->client->watch(w, [me, g, which](const etcd::watch_update& u) {
      caf::anon_send(me, links_watch{g, u, which});
    });
    (r.instances ? instances_watch : watch_id) = id;
  }

  void watched(links_watch& m) {
    if (m.gen != (m.instances ? instances_gen : gen))
      return;
    if (m.update.what == etcd::watch_update::kind::compacted) {
      ctx->client->cancel_watch(m.instances ? instances_watch : watch_id);
      ++(m.instances ? instances_gen : gen);
      start(m.instances);
      return;
    }
    for (auto& ev : m.update.events) {
      auto* v = ev.type == etcd::event_type::put ? &ev.kv.value : nullptr;
      if (m.instances)
        apply_instance(ev.kv.key, v);
      else
        apply(ev.kv.key, v);
    }
  }

  /// Resolutions waiting for a read of a link the table did not know.
  std::unordered_map<std::string, std::vector<caf::typed_response_promise<caf::actor>>>
    lookups;

  void answer(const holder* h, caf::typed_response_promise<caf::actor> rp) {
    if (h == nullptr || h->instance == ctx->instance_id || h->cluster.empty()) {
      rp.deliver(make_error(ec::unavailable, "no instance holds the link"));
      return;
    }
    with_gateway(
      h->cluster, [rp](caf::actor gw) mutable { rp.deliver(gw); },
      [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
  }

  caf::result<caf::actor> resolve(const std::string& id) {
    auto rp = self->make_response_promise<caf::actor>();
    if (auto i = table.find(id); i != table.end()) {
      answer(&i->second, rp);
      return rp;
    }
    // Not in the table: the watch may not have brought the record yet (a
    // provider that registered elsewhere a moment ago). etcd itself says.
    auto& waiting = lookups[id];
    waiting.push_back(rp);
    if (waiting.size() == 1) {
      etcd::range_request r;
      r.key = prefix + id;
      auto me = caf::actor_cast<caf::actor>(self);
      ctx->client->range(r, read_timeout, [me, id](etcd::range_result res) {
        caf::anon_send(me, links_lookup{id, std::move(res)});
      });
    }
    return rp;
  }

  void looked_up(links_lookup& m) {
    auto waiting = std::move(lookups[m.id]);
    lookups.erase(m.id);
    // The record read serves these resolutions only: the table stays the
    // watch's (a removal it brings meanwhile must not be undone by a read).
    std::optional<holder> h;
    if (auto i = table.find(m.id); i != table.end())
      h = i->second;
    else if (!m.result.error && !m.result.kvs.empty()) {
      auto j = json::parse(m.result.kvs.front().value, nullptr, false);
      if (j.is_object())
        h = holder{j.value("iid", ""), j.value("cluster", "")};
    }
    for (auto& rp : waiting)
      answer(h ? &*h : nullptr, rp);
  }
};

caf::behavior links_fn(caf::stateful_actor<links_state>* self,
                       std::shared_ptr<cluster_context> ctx, std::string cluster) {
  auto& st = self->state;
  st.self = self;
  st.ctx = std::move(ctx);
  st.cluster = std::move(cluster);
  st.prefix = st.ctx->prefix + "links/";
  st.instances_prefix = st.ctx->prefix + "instances/";
  st.start(false);
  st.start(true);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& gws = self->state.gateways;
    for (auto i = gws.begin(); i != gws.end(); ++i)
      if (i->second.address() == msg.source) {
        gws.erase(i);
        return;
      }
  });
  self->delayed_send(self, std::chrono::seconds(1), tick{});
  self->attach_functor([ctx = st.ctx, self] {
    ctx->client->cancel_watch(self->state.watch_id);
    ctx->client->cancel_watch(self->state.instances_watch);
  });
  return {
    [=](atom::chat, const std::string& lobby_id, const std::string& nick,
        const std::string& text) {
      self->state.broadcast(
        caf::make_message(atom::chat_v, lobby_id, nick, text, atom::remote_v));
    },
    [=](atom::say, const std::string& lobby_id, const std::string& session_id,
        const std::string& text, const std::string& provider_id) {
      self->state.broadcast(caf::make_message(atom::say_v, lobby_id, session_id,
                                              text, provider_id, atom::remote_v));
    },
    [=](atom::registration, const std::string& id) {
      self->state.local.insert(id);
      self->state.put(id);
    },
    [=](atom::deregister, const std::string& id) {
      self->state.local.erase(id);
      self->state.drop(id);
    },
    [=](atom::resolve, const std::string& id) -> caf::result<caf::actor> {
      return self->state.resolve(id);
    },
    [=](atom::probe, const std::string& id) {
      return self->state.table.count(id) != 0;
    },
    [=](tick) {
      // A new lease (after a fence): the links are written again under it.
      auto& st = self->state;
      self->delayed_send(self, std::chrono::seconds(1), tick{});
      auto lease = st.ctx->lease.load();
      if (lease != 0 && lease != st.written_lease) {
        st.written_lease = lease;
        for (auto& id : st.local)
          st.put(id);
      }
    },
    [=](atom::get, bool instances) { self->state.start(instances); },
    [=](links_read& r) { self->state.read(r); },
    [=](links_watch& m) { self->state.watched(m); },
    [=](links_lookup& m) { self->state.looked_up(m); },
    [=](links_resend& m) { self->state.resend(m); },
  };
}

// -- the cluster gateway --------------------------------------------------------

struct gateway_state {
  static inline constexpr const char* name = "cluster-gateway";
  dispatcher_actor dispatcher;
  lobby_directory_actor directory;
};

/// A provider record enough for the dispatcher's CAF branch (by id).
provider caf_provider(const std::string& id) {
  provider p;
  p.provider_id = id;
  p.name = id;
  p.via = transport::caf;
  return p;
}

caf::behavior gateway_fn(caf::stateful_actor<gateway_state>* self) {
  return {
    [=](atom::peers, dispatcher_actor& d, lobby_directory_actor& dir) {
      self->state.dispatcher = d;
      self->state.directory = dir;
    },
    // Lines said on another instance, for this one's subscribers and CAF
    // bots (never broadcast again).
    [=](atom::chat, const std::string& lobby_id, const std::string& nick,
        const std::string& text, atom::remote) {
      if (!self->state.directory)
        return;
      self->request(self->state.directory, std::chrono::seconds(5),
                    atom::subscribe_v, lobby_id)
        .then([=](lobby_actor& l) {
                caf::anon_send(l, atom::chat_v, nick, text, atom::remote_v);
              },
              [](caf::error&) {});
    },
    [=](atom::say, const std::string& lobby_id, const std::string& session_id,
        const std::string& text, const std::string& provider_id, atom::remote) {
      if (!self->state.directory)
        return;
      self->request(self->state.directory, std::chrono::seconds(5),
                    atom::subscribe_v, lobby_id)
        .then([=](lobby_actor& l) {
                caf::anon_send(l, atom::say_v, session_id, text, provider_id,
                               atom::remote_v);
              },
              [](caf::error&) {});
    },
    [=](atom::join, const std::string& id,
        const dispatch_request& req) -> caf::result<std::string> {
      auto& d = self->state.dispatcher;
      if (!d)
        return make_error(ec::unavailable, "this instance is starting");
      auto rp = self->make_response_promise<std::string>();
      self->request(d, caf::infinite, atom::join_v, caf_provider(id), req,
                    atom::remote_v)
        .then([rp](std::string& run) mutable { rp.deliver(run); },
              [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [=](atom::stop, const std::string& id,
        const std::string& run_id) -> caf::result<bool> {
      auto& d = self->state.dispatcher;
      if (!d)
        return make_error(ec::unavailable, "this instance is starting");
      auto rp = self->make_response_promise<bool>();
      self->request(d, caf::infinite, atom::stop_v, caf_provider(id), run_id,
                    atom::remote_v)
        .then([rp](bool had) mutable { rp.deliver(had); },
              [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
  };
}

} // namespace

caf::actor spawn_cluster_links(caf::actor_system& sys,
                               std::shared_ptr<cluster_context> ctx,
                               std::string cluster) {
  return sys.spawn(links_fn, std::move(ctx), std::move(cluster));
}

caf::actor spawn_cluster_gateway(caf::actor_system& sys) {
  return sys.spawn(gateway_fn);
}

caf::actor spawn_membership(caf::actor_system& sys,
                            std::shared_ptr<cluster_context> ctx,
                            std::shared_ptr<server_stats> stats,
                            std::string info) {
  return sys.spawn(membership_fn, std::move(ctx), std::move(stats),
                   std::move(info));
}

} // namespace vb
