// A test double of the etcd client (etcd/etcd_client.hpp) for the cluster
// actors, in the shape of scripted_link.hpp: it records every call and holds
// its callback until the test answers it (`answer_txn`, `answer_range`, ...;
// a watch's updates with `push`). An answer runs the callback on the test's
// thread, as the real client runs it on its I/O thread: the actor turns it
// into a message to itself, which the test coordinator runs on `run()`. No
// socket, no thread, no real time.
//
// `etcd_model` is an optional helper for the answers: a few keys with
// revisions and leases, and the transactions etcd would run on them (its
// compares, including etcd's rule that a value compare of a missing key
// fails), so a test can answer two racing instances as etcd would.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "etcd/etcd_client.hpp"

namespace vb::test {

namespace etcd_answers {

/// A transaction etcd ran: its compares held.
inline etcd::txn_result txn_succeeded(int64_t revision) {
  etcd::txn_result r;
  r.revision = revision;
  r.succeeded = true;
  return r;
}

/// A transaction whose compares failed, its failure ops reading `kvs` (one
/// range answer), or none.
inline etcd::txn_result txn_failed(int64_t revision,
                                   std::optional<std::vector<etcd::key_value>>
                                     range = std::nullopt) {
  etcd::txn_result r;
  r.revision = revision;
  r.succeeded = false;
  if (range) {
    etcd::txn_op_result o;
    o.op = etcd::txn_op::kind::range;
    o.range.revision = revision;
    o.range.kvs = *range;
    o.range.count = static_cast<int64_t>(range->size());
    r.responses.push_back(std::move(o));
  }
  return r;
}

/// No answer from any endpoint (a timeout, no quorum).
inline etcd::etcd_error unavailable(std::string why = "no quorum (test)") {
  return etcd::etcd_error{etcd::errc::unavailable, 0, 0, std::move(why)};
}

inline etcd::txn_result txn_error(etcd::etcd_error e = unavailable()) {
  etcd::txn_result r;
  r.error = std::move(e);
  return r;
}

inline etcd::key_value kv(std::string key, std::string value,
                          int64_t mod_revision, int64_t create_revision = 0,
                          int64_t lease = 0) {
  etcd::key_value x;
  x.key = std::move(key);
  x.value = std::move(value);
  x.mod_revision = mod_revision;
  x.create_revision = create_revision == 0 ? mod_revision : create_revision;
  x.version = 1;
  x.lease = lease;
  return x;
}

inline etcd::range_result range_page(int64_t revision,
                                     std::vector<etcd::key_value> kvs,
                                     bool more = false) {
  etcd::range_result r;
  r.revision = revision;
  r.count = static_cast<int64_t>(kvs.size());
  r.kvs = std::move(kvs);
  r.more = more;
  return r;
}

inline etcd::watch_event put_event(std::string key, std::string value,
                                   int64_t revision) {
  etcd::watch_event e;
  e.type = etcd::event_type::put;
  e.kv = kv(std::move(key), std::move(value), revision);
  return e;
}

inline etcd::watch_event delete_event(std::string key, int64_t revision) {
  etcd::watch_event e;
  e.type = etcd::event_type::del;
  e.kv.key = std::move(key);
  e.kv.mod_revision = revision;
  return e;
}

inline etcd::watch_update events(std::vector<etcd::watch_event> evs) {
  etcd::watch_update u;
  u.what = etcd::watch_update::kind::events;
  if (!evs.empty())
    u.revision = evs.back().kv.mod_revision;
  u.events = std::move(evs);
  return u;
}

inline etcd::watch_update compacted(int64_t compact_revision) {
  etcd::watch_update u;
  u.what = etcd::watch_update::kind::compacted;
  u.compact_revision = compact_revision;
  return u;
}

} // namespace etcd_answers

struct scripted_etcd : etcd::etcd_client {
  using ms = std::chrono::milliseconds;

  /// One unary call: what was asked, and its callback until answered.
  template <class Request, class Result>
  struct call {
    Request request;
    ms timeout;
    callback<Result> done;
    bool answered = false;
  };
  template <class Result>
  struct plain_call {
    int64_t arg = 0;
    ms timeout;
    callback<Result> done;
    bool answered = false;
  };

  std::vector<call<etcd::range_request, etcd::range_result>> ranges;
  std::vector<call<etcd::put_request, etcd::put_result>> puts;
  std::vector<call<etcd::delete_request, etcd::delete_result>> deletes;
  std::vector<call<etcd::txn_request, etcd::txn_result>> txns;
  std::vector<plain_call<etcd::lease_result>> grants, revokes, keepalives;
  std::vector<plain_call<etcd::lease_ttl_result>> ttls;
  std::vector<plain_call<etcd::status_result>> statuses;
  std::vector<plain_call<etcd::put_result>> compactions;

  struct watch_call {
    uint64_t id = 0;
    etcd::watch_request request;
    watch_callback on_update;
    bool cancelled = false;
  };
  std::vector<watch_call> watches;
  /// Every cancel_watch, with the id it was given (also unknown ones).
  std::vector<uint64_t> cancels;

  struct keeper_call {
    uint64_t id = 0;
    std::chrono::seconds ttl;
    std::function<void(int64_t)> on_granted;
    std::function<void(int64_t)> on_lost;
    std::shared_ptr<etcd::lease_status> status;
    bool stopped = false;
    bool revoked = false;
  };
  std::vector<keeper_call> keepers;

  /// Every call by name ("txn", "range", "watch", "cancel_watch", ...), in
  /// order: what a test checks when it says "nothing else was sent".
  std::vector<std::string> log;

  scripted_etcd() = default;

  // -- the client's calls: recorded, held --------------------------------------

  /// Logs a call by name and keeps it (with its callback) in `calls`.
  template <class Calls, class... Ts>
  void hold(const char* name, Calls& calls, Ts&&... xs) {
    log.push_back(name);
    calls.push_back({std::forward<Ts>(xs)...});
  }

  void range(etcd::range_request r, ms timeout,
             callback<etcd::range_result> done) override {
    hold("range", ranges, std::move(r), timeout, std::move(done));
  }
  void put(etcd::put_request r, ms timeout,
           callback<etcd::put_result> done) override {
    hold("put", puts, std::move(r), timeout, std::move(done));
  }
  void delete_range(etcd::delete_request r, ms timeout,
                    callback<etcd::delete_result> done) override {
    hold("delete_range", deletes, std::move(r), timeout, std::move(done));
  }
  void txn(etcd::txn_request r, ms timeout,
           callback<etcd::txn_result> done) override {
    hold("txn", txns, std::move(r), timeout, std::move(done));
  }
  void lease_grant(int64_t ttl_seconds, ms timeout,
                   callback<etcd::lease_result> done) override {
    hold("lease_grant", grants, ttl_seconds, timeout, std::move(done));
  }
  void lease_revoke(int64_t id, ms timeout,
                    callback<etcd::lease_result> done) override {
    hold("lease_revoke", revokes, id, timeout, std::move(done));
  }
  void lease_keepalive(int64_t id, ms timeout,
                       callback<etcd::lease_result> done) override {
    hold("lease_keepalive", keepalives, id, timeout, std::move(done));
  }
  void lease_time_to_live(int64_t id, bool, ms timeout,
                          callback<etcd::lease_ttl_result> done) override {
    hold("lease_time_to_live", ttls, id, timeout, std::move(done));
  }
  void status(ms timeout, callback<etcd::status_result> done) override {
    hold("status", statuses, 0, timeout, std::move(done));
  }
  void compact(int64_t revision, ms timeout,
               callback<etcd::put_result> done) override {
    hold("compact", compactions, revision, timeout, std::move(done));
  }
  uint64_t watch(etcd::watch_request r, watch_callback on_update) override {
    log.push_back("watch");
    auto id = static_cast<uint64_t>(watches.size()) + 1;
    watches.push_back({id, std::move(r), std::move(on_update)});
    return id;
  }
  void cancel_watch(uint64_t id) override {
    log.push_back("cancel_watch");
    cancels.push_back(id);
    if (id >= 1 && id <= watches.size()) {
      // No update after the cancel (as the client promises): dropped.
      watches[id - 1].cancelled = true;
      watches[id - 1].on_update = nullptr;
    }
  }
  std::pair<uint64_t, std::shared_ptr<const etcd::lease_status>>
  keep_lease(std::chrono::seconds ttl, std::function<void(int64_t)> on_granted,
             std::function<void(int64_t)> on_lost) override {
    log.push_back("keep_lease");
    auto id = static_cast<uint64_t>(keepers.size()) + 1;
    auto st = std::make_shared<etcd::lease_status>();
    keepers.push_back({id, ttl, std::move(on_granted), std::move(on_lost), st});
    return {id, st};
  }
  void stop_keeper(uint64_t id, bool revoke) override {
    log.push_back("stop_keeper");
    if (id >= 1 && id <= keepers.size()) {
      keepers[id - 1].stopped = true;
      keepers[id - 1].revoked = revoke;
      keepers[id - 1].on_granted = nullptr;
      keepers[id - 1].on_lost = nullptr;
    }
  }

  // -- the test's answers ----------------------------------------------------------

  void answer_txn(std::size_t i, etcd::txn_result r) {
    answer(txns.at(i), std::move(r), "txn");
  }
  void answer_range(std::size_t i, etcd::range_result r) {
    answer(ranges.at(i), std::move(r), "range");
  }
  void answer_put(std::size_t i, etcd::put_result r) {
    answer(puts.at(i), std::move(r), "put");
  }

  /// An update of the `i`-th watch (0-based, in the order they were made);
  /// refused once it is cancelled (the client sends nothing after that).
  void push(std::size_t i, etcd::watch_update u) {
    auto& w = watches.at(i);
    if (w.cancelled || !w.on_update)
      throw std::logic_error("scripted_etcd: an update of a cancelled watch");
    w.on_update(u);
  }

  /// The watches not cancelled.
  std::size_t live_watches() const {
    std::size_t n = 0;
    for (auto& w : watches)
      if (!w.cancelled)
        ++n;
    return n;
  }

  /// The transactions not answered yet.
  std::size_t open_txns() const {
    std::size_t n = 0;
    for (auto& t : txns)
      if (!t.answered)
        ++n;
    return n;
  }

  /// Drops every callback held: they hold the calling actors (a cycle
  /// through the actors' context); the fixture calls it before it stops them.
  void drop_all() {
    auto drop = [](auto& calls) {
      for (auto& c : calls)
        c.done = nullptr;
    };
    drop(ranges);
    drop(puts);
    drop(deletes);
    drop(txns);
    drop(grants);
    drop(revokes);
    drop(keepalives);
    drop(ttls);
    drop(statuses);
    drop(compactions);
    for (auto& w : watches)
      w.on_update = nullptr;
    for (auto& k : keepers) {
      k.on_granted = nullptr;
      k.on_lost = nullptr;
    }
  }

private:
  template <class Call, class Result>
  static void answer(Call& c, Result r, const char* what) {
    if (c.answered || !c.done)
      throw std::logic_error(std::string{"scripted_etcd: a "} + what
                             + " answered twice");
    c.answered = true;
    auto done = std::move(c.done);
    c.done = nullptr;
    done(std::move(r));
  }
};

/// A few keys as etcd keeps them, to answer transactions as etcd would.
/// One revision per transaction that writes; leases are plain numbers
/// (nothing expires unless the test says so).
struct etcd_model {
  std::map<std::string, etcd::key_value> kvs;
  int64_t revision = 1;

  void put(const std::string& key, const std::string& value,
           int64_t lease = 0) {
    ++revision;
    write_put(key, value, lease);
  }

  void erase(const std::string& key) {
    ++revision;
    kvs.erase(key);
  }

  std::optional<etcd::key_value> get(const std::string& key) const {
    auto i = kvs.find(key);
    if (i == kvs.end())
      return std::nullopt;
    return i->second;
  }

  /// Whether one compare holds (etcd's applyCompare: a value compare of a
  /// missing key fails; the other targets compare the missing key's zeros).
  bool holds(const etcd::compare& c) const {
    auto i = kvs.find(c.key);
    if (i == kvs.end() && c.target == etcd::compare_target::value)
      return false;
    etcd::key_value zero;
    const auto& x = i == kvs.end() ? zero : i->second;
    int cmp = 0;
    auto three_way = [](auto a, auto b) { return a < b ? -1 : (a > b ? 1 : 0); };
    switch (c.target) {
      case etcd::compare_target::value:
        cmp = x.value.compare(c.value) < 0 ? -1 : (x.value == c.value ? 0 : 1);
        break;
      case etcd::compare_target::version:
        cmp = three_way(x.version, c.number);
        break;
      case etcd::compare_target::create:
        cmp = three_way(x.create_revision, c.number);
        break;
      case etcd::compare_target::mod:
        cmp = three_way(x.mod_revision, c.number);
        break;
      case etcd::compare_target::lease:
        cmp = three_way(x.lease, c.number);
        break;
    }
    switch (c.result) {
      case etcd::compare_result::equal:
        return cmp == 0;
      case etcd::compare_result::not_equal:
        return cmp != 0;
      case etcd::compare_result::greater:
        return cmp > 0;
      case etcd::compare_result::less:
        return cmp < 0;
    }
    return false;
  }

  /// Runs a transaction as etcd would and answers it.
  etcd::txn_result apply(const etcd::txn_request& t) {
    bool ok = true;
    for (auto& c : t.compares)
      ok = ok && holds(c);
    auto& ops = ok ? t.success : t.failure;
    bool writes = false;
    for (auto& op : ops)
      writes = writes || op.op != etcd::txn_op::kind::range;
    if (writes)
      ++revision;
    etcd::txn_result r;
    r.succeeded = ok;
    for (auto& op : ops) {
      etcd::txn_op_result o;
      o.op = op.op;
      switch (op.op) {
        case etcd::txn_op::kind::put:
          write_put(op.put.key, op.put.value, op.put.lease);
          o.put.revision = revision;
          break;
        case etcd::txn_op::kind::del:
          o.del.deleted = static_cast<int64_t>(kvs.erase(op.del.key));
          o.del.revision = revision;
          break;
        case etcd::txn_op::kind::range: {
          o.range.revision = revision;
          auto end = op.range.prefix ? etcd::prefix_end(op.range.key)
                                     : op.range.range_end;
          for (auto& [k, v] : kvs)
            if (end.empty() ? k == op.range.key
                            : (k >= op.range.key && k < end))
              o.range.kvs.push_back(v);
          o.range.count = static_cast<int64_t>(o.range.kvs.size());
          break;
        }
      }
      r.responses.push_back(std::move(o));
    }
    r.revision = revision;
    return r;
  }

private:
  void write_put(const std::string& key, const std::string& value,
                 int64_t lease) {
    auto& x = kvs[key];
    if (x.key.empty()) {
      x.key = key;
      x.create_revision = revision;
      x.version = 0;
    }
    x.value = value;
    x.mod_revision = revision;
    ++x.version;
    x.lease = lease;
  }
};

} // namespace vb::test
