// Cluster mode's start-up (blocking, before anything serves): the one-time
// import of the data directory into an empty etcd, the load of every owner
// at one revision, and the instance id.
#include <fstream>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "cluster/internal.hpp"
#include "model/clock.hpp"
#include "model/ids.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

using namespace cluster_detail;

// -- start-up -------------------------------------------------------------------

namespace {

/// Which setting a refusal points at.
std::string hint(const std::string& why) {
  if (why.find("certificate verify failed") != std::string::npos)
    return " (is --etcd-ca the CA that signed etcd's certificate, and does "
           "that certificate name the endpoint's host?)";
  if (why.find("alert") != std::string::npos)
    return " (etcd did not accept this instance's client certificate: "
           "--etcd-cert and --etcd-key, signed by etcd's --trusted-ca-file)";
  if (why.find("authentication failed") != std::string::npos)
    return " (--etcd-user and --etcd-password-file)";
  if (why.find("user name is empty") != std::string::npos)
    return " (etcd has authentication on: --etcd-user and "
           "--etcd-password-file, or a client certificate)";
  if (why.find("CommonName") != std::string::npos)
    return " (with authentication on, etcd's JSON gateway takes no client "
           "certificate with a Common Name: issue --etcd-cert without one, "
           "the user is --etcd-user)";
  if (why.find("permission denied") != std::string::npos)
    return " (the etcd user needs a role with readwrite on the prefix)";
  return {};
}

} // namespace

std::string cluster_probe(cluster_context& ctx, const std::string& endpoints) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  etcd::range_request get;
  get.key = ctx.prefix + "meta/schema"; // a read the user must be allowed
  for (;;) {
    auto got = wait_for<etcd::range_result>(
      [&](auto cb) { ctx.client->range(get, read_timeout, cb); });
    auto& e = got.error;
    if (!e)
      return {};
    // TLS, the password, or a user without rights: no wait mends these.
    bool settings = e.kind == etcd::errc::refused
                    || e.kind == etcd::errc::bad_request
                    || (e.http_status >= 400 && e.http_status < 500)
                    || (e.kind == etcd::errc::server
                        && (e.code == etcd::grpc::invalid_argument
                            || e.code == etcd::grpc::permission_denied
                            || e.code == etcd::grpc::unauthenticated));
    if (settings)
      return "etcd at " + endpoints + " refuses this instance: " + describe(e)
             + hint(e.message);
    if (std::chrono::steady_clock::now() > deadline)
      return "etcd at " + endpoints + " did not answer within 60 s ("
             + describe(e) + "): cannot start without etcd";
    std::this_thread::sleep_for(milliseconds(250));
  }
}

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


} // namespace vb
