// Cluster mode's keys and values in etcd, and the helpers the cluster
// actors share (cluster/internal.hpp).
#include <nlohmann/json.hpp>

#include "cluster/internal.hpp"
#include "model/clock.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

namespace cluster_detail {

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


std::string describe(const etcd::etcd_error& e) {
  std::string s = etcd::to_string(e.kind);
  if (e.code != 0)
    s += " (code " + std::to_string(e.code) + ")";
  if (!e.message.empty())
    s += ": " + e.message;
  return s;
}


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


/// Its value once the member is committed (no lease): the member's session.
std::string joined_value(const std::string& session_id,
                         const std::string& session) {
  return R"({"state":"joined","session_id":)" + json(session_id).dump()
         + R"(,"session":)" + session + "}";
}


/// The value an image op puts (the entry's snapshot JSON), or null for a
/// removal.
std::shared_ptr<const std::string> op_value(const image_op& op) {
  if (op.json)
    return op.json;
  if (op.member)
    return std::make_shared<const std::string>(session_json(*op.member));
  return nullptr;
}


} // namespace cluster_detail

using namespace cluster_detail;

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

} // namespace vb
