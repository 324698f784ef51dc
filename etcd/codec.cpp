#include "etcd/codec.hpp"

#include <exception>
#include <type_traits>
#include <utility>

#include "model/log_text.hpp"

namespace vb::etcd {

// -- plain helpers ----------------------------------------------------------------

std::string prefix_end(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

namespace {

constexpr const char* b64_chars
  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

} // namespace

std::string base64_encode(const std::string& s) {
  std::string out;
  out.reserve((s.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(s[k]));
  };
  for (; i + 2 < s.size(); i += 3) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += b64_chars[n >> 18 & 63];
    out += b64_chars[n >> 12 & 63];
    out += b64_chars[n >> 6 & 63];
    out += b64_chars[n & 63];
  }
  if (i + 1 == s.size()) {
    uint32_t n = byte(i) << 16;
    out += b64_chars[n >> 18 & 63];
    out += b64_chars[n >> 12 & 63];
    out += "==";
  } else if (i + 2 == s.size()) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8;
    out += b64_chars[n >> 18 & 63];
    out += b64_chars[n >> 12 & 63];
    out += b64_chars[n >> 6 & 63];
    out += '=';
  }
  return out;
}

bool base64_decode(const std::string& s, std::string& out) {
  out.clear();
  if (s.size() % 4 != 0)
    return false;
  uint32_t acc = 0;
  int bits = 0;
  std::size_t pad = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=' && i + 2 >= s.size()) {
      ++pad;
      continue;
    } else
      return false;
    if (pad)
      return false; // data after '='
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

txn_op txn_op::make(put_request r) {
  txn_op op;
  op.op = kind::put;
  op.put = std::move(r);
  return op;
}

txn_op txn_op::make(range_request r) {
  txn_op op;
  op.op = kind::range;
  op.range = std::move(r);
  return op;
}

txn_op txn_op::make(delete_request r) {
  txn_op op;
  op.op = kind::del;
  op.del = std::move(r);
  return op;
}

// -- reading fields -----------------------------------------------------------------

namespace {

/// The gateway writes 64-bit numbers as strings ("6"); numbers are read too.
/// 0 when absent or not a number of type T.
template <class T>
T number(const json& j, const char* name) {
  auto i = j.find(name);
  if (i == j.end())
    return 0;
  try {
    if (i->is_string()) {
      if constexpr (std::is_signed_v<T>)
        return std::stoll(i->get<std::string>());
      else
        return std::stoull(i->get<std::string>());
    }
    if (i->is_number())
      return i->get<T>();
  } catch (const std::exception&) {
  }
  return 0;
}

int64_t i64(const json& j, const char* name) {
  return number<int64_t>(j, name);
}

uint64_t u64(const json& j, const char* name) {
  return number<uint64_t>(j, name);
}

bool flag(const json& j, const char* name) {
  auto i = j.find(name);
  return i != j.end() && i->is_boolean() && i->get<bool>();
}

std::string b64_field(const json& j, const char* name) {
  auto i = j.find(name);
  std::string out;
  if (i != j.end() && i->is_string())
    base64_decode(i->get<std::string>(), out);
  return out;
}

int64_t header_revision(const json& j) {
  auto h = j.find("header");
  return h != j.end() && h->is_object() ? i64(*h, "revision") : 0;
}

key_value kv_of(const json& j) {
  key_value kv;
  if (!j.is_object())
    return kv;
  kv.key = b64_field(j, "key");
  kv.value = b64_field(j, "value");
  kv.create_revision = i64(j, "create_revision");
  kv.mod_revision = i64(j, "mod_revision");
  kv.version = i64(j, "version");
  kv.lease = i64(j, "lease");
  return kv;
}

std::vector<key_value> kvs_of(const json& j, const char* name) {
  std::vector<key_value> out;
  auto i = j.find(name);
  if (i != j.end() && i->is_array())
    for (auto& x : *i)
      out.push_back(kv_of(x));
  return out;
}

// -- writing requests ---------------------------------------------------------------

/// Range, delete and watch name their keys alike: a prefix wins over range_end.
void set_range_end(json& j, const std::string& key,
                   const std::string& range_end, bool prefix) {
  auto end = prefix ? prefix_end(key) : range_end;
  if (!end.empty())
    j["range_end"] = base64_encode(end);
}

json compare_json(const compare& c) {
  static const char* targets[] = {"VALUE", "VERSION", "CREATE", "MOD", "LEASE"};
  static const char* results[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};
  json j{{"key", base64_encode(c.key)},
         {"target", targets[static_cast<int>(c.target)]},
         {"result", results[static_cast<int>(c.result)]}};
  auto n = std::to_string(c.number);
  switch (c.target) {
    case compare_target::value:
      j["value"] = base64_encode(c.value);
      break;
    case compare_target::version:
      j["version"] = n;
      break;
    case compare_target::create:
      j["create_revision"] = n;
      break;
    case compare_target::mod:
      j["mod_revision"] = n;
      break;
    case compare_target::lease:
      j["lease"] = n;
      break;
  }
  return j;
}

json op_json(const txn_op& op) {
  switch (op.op) {
    case txn_op::kind::put:
      return json{{"request_put", put_json(op.put)}};
    case txn_op::kind::range:
      return json{{"request_range", range_json(op.range)}};
    case txn_op::kind::del:
      return json{{"request_delete_range", delete_json(op.del)}};
  }
  return json::object();
}

} // namespace

json range_json(const range_request& r) {
  json j{{"key", base64_encode(r.key)}};
  set_range_end(j, r.key, r.range_end, r.prefix);
  if (r.revision)
    j["revision"] = std::to_string(r.revision);
  if (r.limit)
    j["limit"] = std::to_string(r.limit);
  if (r.keys_only)
    j["keys_only"] = true;
  if (r.count_only)
    j["count_only"] = true;
  if (r.serializable)
    j["serializable"] = true;
  return j;
}

json put_json(const put_request& r) {
  json j{{"key", base64_encode(r.key)}, {"value", base64_encode(r.value)}};
  if (r.lease)
    j["lease"] = std::to_string(r.lease);
  if (r.prev_kv)
    j["prev_kv"] = true;
  return j;
}

json delete_json(const delete_request& r) {
  json j{{"key", base64_encode(r.key)}};
  set_range_end(j, r.key, r.range_end, r.prefix);
  if (r.prev_kv)
    j["prev_kv"] = true;
  return j;
}

json txn_json(const txn_request& r) {
  json j = json::object();
  j["compare"] = json::array();
  for (auto& c : r.compares)
    j["compare"].push_back(compare_json(c));
  j["success"] = json::array();
  for (auto& op : r.success)
    j["success"].push_back(op_json(op));
  j["failure"] = json::array();
  for (auto& op : r.failure)
    j["failure"].push_back(op_json(op));
  return j;
}

json lease_grant_json(int64_t ttl_seconds) {
  return json{{"TTL", ttl_seconds}};
}

json lease_id_json(int64_t id) {
  return json{{"ID", std::to_string(id)}};
}

json lease_ttl_json(int64_t id, bool keys) {
  json j = lease_id_json(id);
  if (keys)
    j["keys"] = true;
  return j;
}

json compaction_json(int64_t revision) {
  return json{{"revision", std::to_string(revision)}, {"physical", true}};
}

json watch_create_json(const watch_request& r,
                       std::optional<int64_t> start_revision) {
  json create{{"key", base64_encode(r.key)}};
  set_range_end(create, r.key, r.range_end, r.prefix);
  if (start_revision)
    create["start_revision"] = std::to_string(*start_revision);
  if (r.prev_kv)
    create["prev_kv"] = true;
  if (r.progress_notify)
    create["progress_notify"] = true;
  return json{{"create_request", create}};
}

// -- reading answers ----------------------------------------------------------------

reply interpret(unsigned status, const std::string& text) {
  reply r;
  // A streamed answer may hold several lines: the first one counts.
  auto begin = text.find_first_not_of(" \t\r\n");
  std::string first;
  if (begin != std::string::npos) {
    auto nl = text.find('\n', begin);
    first = text.substr(begin, nl == std::string::npos ? std::string::npos
                                                       : nl - begin);
  }
  auto j = json::parse(first, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = {errc::bad_answer, 0, static_cast<int>(status),
               "HTTP " + std::to_string(status) + ": " + log_text(text)};
    return r;
  }
  if (auto e = j.find("error"); e != j.end()) {
    r.error.kind = errc::server;
    r.error.http_status = static_cast<int>(status);
    if (e->is_object()) {
      r.error.code = static_cast<int>(i64(*e, "grpc_code"));
      if (auto m = e->find("message"); m != e->end() && m->is_string())
        r.error.message = m->get<std::string>();
    } else {
      r.error.code = static_cast<int>(i64(j, "code"));
      if (auto m = j.find("message"); m != j.end() && m->is_string())
        r.error.message = m->get<std::string>();
      else if (e->is_string())
        r.error.message = e->get<std::string>();
    }
    return r;
  }
  if (auto res = j.find("result"); res != j.end() && res->is_object())
    j = *res;
  if (status != 200) {
    r.error = {errc::bad_answer, 0, static_cast<int>(status),
               "HTTP " + std::to_string(status) + ": " + log_text(text)};
    return r;
  }
  r.body = std::move(j);
  return r;
}

range_result range_of(const json& j) {
  range_result r;
  r.revision = header_revision(j);
  r.kvs = kvs_of(j, "kvs");
  r.count = i64(j, "count");
  r.more = flag(j, "more");
  return r;
}

put_result put_of(const json& j) {
  put_result r;
  r.revision = header_revision(j);
  if (auto i = j.find("prev_kv"); i != j.end() && i->is_object())
    r.prev_kv = kv_of(*i);
  return r;
}

delete_result delete_of(const json& j) {
  delete_result r;
  r.revision = header_revision(j);
  r.deleted = i64(j, "deleted");
  r.prev_kvs = kvs_of(j, "prev_kvs");
  return r;
}

namespace {

/// One entry of a txn's responses; an unknown entry stays an empty put.
txn_op_result op_result_of(const json& x) {
  txn_op_result o;
  if (auto p = x.find("response_put"); p != x.end()) {
    o.op = txn_op::kind::put;
    o.put = put_of(*p);
  } else if (auto g = x.find("response_range"); g != x.end()) {
    o.op = txn_op::kind::range;
    o.range = range_of(*g);
  } else if (auto d = x.find("response_delete_range"); d != x.end()) {
    o.op = txn_op::kind::del;
    o.del = delete_of(*d);
  }
  return o;
}

} // namespace

txn_result txn_of(const json& b) {
  txn_result t;
  t.revision = header_revision(b);
  t.succeeded = flag(b, "succeeded");
  auto rs = b.find("responses");
  if (rs != b.end() && rs->is_array())
    for (auto& x : *rs)
      t.responses.push_back(op_result_of(x));
  return t;
}

lease_result lease_of(const json& b) {
  lease_result l;
  l.revision = header_revision(b);
  l.id = i64(b, "ID");
  l.ttl = i64(b, "TTL");
  return l;
}

lease_ttl_result lease_ttl_of(const json& b) {
  lease_ttl_result t;
  t.revision = header_revision(b);
  t.id = i64(b, "ID");
  t.ttl = b.contains("TTL") ? i64(b, "TTL") : -1;
  t.granted_ttl = i64(b, "grantedTTL");
  if (auto k = b.find("keys"); k != b.end() && k->is_array())
    for (auto& x : *k) {
      std::string key;
      if (x.is_string() && base64_decode(x.get<std::string>(), key))
        t.keys.push_back(std::move(key));
    }
  return t;
}

status_result status_of(const json& b) {
  status_result s;
  s.revision = header_revision(b);
  if (auto v = b.find("version"); v != b.end() && v->is_string())
    s.version = v->get<std::string>();
  s.db_size = i64(b, "dbSize");
  s.leader = u64(b, "leader");
  s.raft_index = u64(b, "raftIndex");
  s.raft_term = u64(b, "raftTerm");
  if (auto h = b.find("header"); h != b.end() && h->is_object())
    s.member_id = u64(*h, "member_id");
  return s;
}

put_result compaction_of(const json& b) {
  put_result r;
  r.revision = header_revision(b);
  return r;
}

// -- reading a watch stream ---------------------------------------------------------

namespace {

watch_line reconnect(std::string why) {
  watch_line m;
  m.what = watch_line::kind::reconnect;
  m.why = std::move(why);
  return m;
}

watch_event event_of(const json& e) {
  watch_event ev;
  auto type = e.find("type");
  ev.type = type != e.end() && type->is_string()
              && type->get<std::string>() == "DELETE"
              ? event_type::del
              : event_type::put;
  if (auto kv = e.find("kv"); kv != e.end())
    ev.kv = kv_of(*kv);
  if (auto prev = e.find("prev_kv"); prev != e.end() && prev->is_object())
    ev.prev_kv = kv_of(*prev);
  return ev;
}

} // namespace

watch_line watch_line_of(const std::string& line) {
  watch_line m;
  if (line.find_first_not_of(" \t\r") == std::string::npos)
    return m;
  auto j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return reconnect("bad message: " + log_text(line));
  if (auto e = j.find("error"); e != j.end()) {
    auto msg = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                 ? (*e)["message"].get<std::string>()
                 : log_text(e->dump());
    return reconnect("error: " + msg);
  }
  auto res = j.find("result");
  if (res == j.end() || !res->is_object())
    return m;
  auto& r = *res;
  m.what = watch_line::kind::update;
  auto& u = m.update;
  u.revision = header_revision(r);
  auto compact = i64(r, "compact_revision");
  if (compact > 0) {
    u.what = watch_update::kind::compacted;
    u.compact_revision = compact;
    return m;
  }
  if (flag(r, "canceled")) {
    auto reason = r.find("cancel_reason");
    return reconnect("canceled"
                     + (reason != r.end() && reason->is_string()
                          ? ": " + reason->get<std::string>()
                          : std::string()));
  }
  if (flag(r, "created")) {
    u.what = watch_update::kind::created;
    return m;
  }
  auto events = r.find("events");
  if (events != r.end() && events->is_array() && !events->empty()) {
    u.what = watch_update::kind::events;
    for (auto& e : *events)
      u.events.push_back(event_of(e));
    return m;
  }
  // No events: a progress notification up to the header's revision.
  u.what = watch_update::kind::progress;
  return m;
}

} // namespace vb::etcd
