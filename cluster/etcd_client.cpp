#include "cluster/etcd_client.hpp"

#include <algorithm>
#include <exception>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "link/round_trip.hpp"
#include "model/call_once.hpp"
#include "model/log_text.hpp"
#include "model/url.hpp"

namespace vb::etcd {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// -- plain helpers ----------------------------------------------------------------

const char* to_string(errc x) {
  switch (x) {
    case errc::none:
      return "none";
    case errc::unavailable:
      return "unavailable";
    case errc::server:
      return "server";
    case errc::bad_answer:
      return "bad_answer";
    case errc::bad_request:
      return "bad_request";
    case errc::client_stopped:
      return "client_stopped";
  }
  return "?";
}

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

std::vector<std::string> split_endpoints(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    if (comma == std::string::npos)
      comma = list.size();
    auto item = list.substr(start, comma - start);
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos)
      out.push_back(item.substr(b, e - b + 1));
    start = comma + 1;
  }
  return out;
}

std::optional<milliseconds> lease_status::since_renewal() const {
  auto ns = last_ok_ns_.load();
  if (ns == 0)
    return std::nullopt;
  auto now = clock_type::now().time_since_epoch();
  return std::chrono::duration_cast<milliseconds>(
    now - std::chrono::nanoseconds(ns));
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

// -- JSON of the gateway ------------------------------------------------------------

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

json range_json(const range_request& r) {
  json j{{"key", base64_encode(r.key)}};
  auto end = r.prefix ? prefix_end(r.key) : r.range_end;
  if (!end.empty())
    j["range_end"] = base64_encode(end);
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
  auto end = r.prefix ? prefix_end(r.key) : r.range_end;
  if (!end.empty())
    j["range_end"] = base64_encode(end);
  if (r.prev_kv)
    j["prev_kv"] = true;
  return j;
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

/// An answer: an error, or the JSON object (unwrapped from "result").
struct reply {
  etcd_error error;
  json body;
};

/// Reads the gateway's answer: `{"error":"..","message":"..","code":N}`,
/// `{"error":{"grpc_code":N,"message":".."}}` (streams), `{"result":{..}}`
/// (the keepalive stream) or the result object itself.
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

bool is_unavailable(const etcd_error& e) {
  return e.kind == errc::server && e.code == grpc::unavailable;
}

struct endpoint {
  std::string text; // as given
  std::string host_field;
  tcp::resolver::results_type addresses;
};

reply client_stopped_reply() {
  reply r;
  r.error = {errc::client_stopped, 0, 0, "client stopped"};
  return r;
}

void report_callback_threw(const char* what) {
  if (what)
    spdlog::error("etcd client: a callback threw: {}", what);
  else
    spdlog::error("etcd client: a callback threw");
}

/// The caller's callback, called exactly once: if dropped unanswered (the
/// client stopped), with client_stopped.
struct once : call_once<reply> {
  explicit once(std::function<void(reply)> f)
    : call_once(std::move(f), client_stopped_reply, report_callback_threw) {
  }
};

template <class F, class... A>
void guarded(const F& f, A&&... a) noexcept {
  if (!f)
    return;
  try {
    f(std::forward<A>(a)...);
  } catch (const std::exception& e) {
    report_callback_threw(e.what());
  } catch (...) {
    report_callback_threw(nullptr);
  }
}

} // namespace

// -- the shared state ---------------------------------------------------------------

class watch_state;
class keeper_state;

struct etcd_client::impl {
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{
    ioc.get_executor()};
  std::thread thread;
  etcd_options options;
  std::vector<endpoint> endpoints;
  std::string config_error; // non-empty: every call fails with it
  // Below: only on the I/O thread.
  std::size_t current = 0; // the endpoint calls start at
  bool stopping = false;
  std::unordered_map<uint64_t, std::shared_ptr<watch_state>> watches;
  std::unordered_map<uint64_t, std::shared_ptr<keeper_state>> keepers;

  /// Starts a unary call of `path` with `body`; `done` on the I/O thread.
  /// `resend`: whether a request already sent may be sent again (to the
  /// next endpoint) when its answer does not come; false for writes that
  /// must not apply twice (a txn whose compares its own first attempt would
  /// fail): then the call ends with `unavailable` and the outcome is
  /// unknown to the caller.
  void call(std::string path, std::string body, clock_type::time_point deadline,
            once done, bool resend = true);
};

namespace {

using impl = etcd_client::impl;

/// One unary call: attempts (each one round trip, link/round_trip.hpp) on
/// the endpoints in turn until one answers something other than
/// "unavailable", or the deadline.
class unary_call : public std::enable_shared_from_this<unary_call> {
public:
  unary_call(impl& owner, std::string path, std::string body,
             clock_type::time_point deadline, once done, bool resend)
    : resend_(resend),
      owner_(owner),
      path_(std::move(path)),
      body_(std::move(body)),
      deadline_(deadline),
      pause_(owner.ioc),
      done_(std::move(done)) {
  }

  void start() {
    if (!owner_.config_error.empty()) {
      reply r;
      r.error = {errc::bad_request, 0, 0, owner_.config_error};
      return done_(std::move(r));
    }
    index_ = owner_.current;
    attempt();
  }

private:
  void attempt() {
    auto now = clock_type::now();
    if (now >= deadline_) {
      reply r;
      r.error = {errc::unavailable, saw_unavailable_ ? grpc::unavailable : 0,
                 last_.http_status, "no endpoint answered: " + last_.message};
      return done_(std::move(r));
    }
    auto& ep = owner_.endpoints[index_];
    round_trip::request req;
    req.method(bhttp::verb::post);
    req.target(path_);
    req.version(11);
    req.set(bhttp::field::host, ep.host_field);
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body_;
    req.keep_alive(false);
    req.prepare_payload();
    round_trip::peer to;
    to.addresses = ep.addresses;
    // Any status is read on: interpret() judges the answer.
    round_trip::reading rules{owner_.options.max_body_bytes, nullptr};
    round_trip::start(owner_.ioc.get_executor(), std::move(to), std::move(req),
                      rules,
                      std::min(deadline_, now + owner_.options.attempt_timeout),
                      [self = shared_from_this()](round_trip::outcome o) {
                        self->on_outcome(std::move(o));
                      },
                      report_callback_threw);
  }

  void on_outcome(round_trip::outcome o) {
    if (o.dropped)
      return; // the client stops: done_ reports client_stopped
    sent_ = sent_ || o.sent;
    if (o.error == bhttp::error::body_limit) {
      reply r;
      r.error = {errc::bad_answer, 0, 0, "answer too large"};
      return done_(std::move(r));
    }
    if (o.at != round_trip::step::done)
      return next(std::string(round_trip::to_string(o.at)) + ": "
                  + o.error.message());
    auto r = interpret(o.res.result_int(), o.res.body());
    if (is_unavailable(r.error)) {
      last_ = r.error;
      saw_unavailable_ = true;
      return next("unavailable: " + r.error.message, true);
    }
    done_(std::move(r));
  }

  /// This endpoint failed: the next one (after a pause once all failed).
  /// `answered`: it answered code 14 (kept in last_ as the server's error).
  void next(std::string why, bool answered = false) {
    auto& ep = owner_.endpoints[index_];
    spdlog::debug("etcd client: {} {}: {}", ep.text, path_, why);
    if (!answered)
      last_ = {errc::unavailable, 0, 0, ep.text + ": " + why};
    if (sent_ && !resend_) {
      // It may have applied: never sent again (see impl::call).
      reply r;
      r.error = {errc::unavailable, saw_unavailable_ ? grpc::unavailable : 0,
                 last_.http_status,
                 "no answer, the outcome is unknown: " + last_.message};
      return done_(std::move(r));
    }
    auto n = owner_.endpoints.size();
    index_ = (index_ + 1) % n;
    owner_.current = index_;
    if (++tries_ % n != 0)
      return attempt();
    pause_.expires_at(
      std::min(deadline_, clock_type::now() + owner_.options.retry_pause));
    pause_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->attempt();
    });
  }

  bool resend_ = true;
  bool sent_ = false; // the request was written on this attempt or before
  impl& owner_;
  std::string path_;
  std::string body_;
  clock_type::time_point deadline_;
  net::steady_timer pause_;
  std::size_t index_ = 0;
  std::size_t tries_ = 0;
  bool saw_unavailable_ = false; // an endpoint answered code 14
  etcd_error last_{errc::unavailable, 0, 0, "no attempt"};
  once done_;
};

} // namespace

void etcd_client::impl::call(std::string path, std::string body,
                             clock_type::time_point deadline, once done,
                             bool resend) {
  auto c = std::make_shared<unary_call>(*this, std::move(path), std::move(body),
                                        deadline, std::move(done), resend);
  net::post(ioc, [c] { c->start(); });
}

// -- watches ------------------------------------------------------------------------

/// One resumable watch: a streaming POST /v3/watch, reconnected (next
/// endpoint, backoff) from last_revision + 1 until cancelled or compacted.
class watch_state : public std::enable_shared_from_this<watch_state> {
public:
  watch_state(impl& owner, uint64_t id, watch_request r,
              etcd_client::watch_callback cb)
    : owner_(owner),
      id_(id),
      req_(std::move(r)),
      cb_(std::move(cb)),
      timer_(owner.ioc),
      backoff_(owner.options.watch_backoff) {
    if (req_.start_revision > 0) {
      last_revision_ = req_.start_revision - 1;
      have_revision_ = true;
    }
    index_ = owner_.current;
    on_chunk_ = [this](std::uint64_t, beast::string_view body,
                       beast::error_code& ec) -> std::size_t {
      feed(body, ec);
      return body.size();
    };
  }

  void start() {
    if (!owner_.config_error.empty()) {
      watch_update u;
      u.what = watch_update::kind::broken;
      u.message = owner_.config_error;
      return guarded(cb_, u);
    }
    connect();
  }

  void cancel() {
    ended_ = true;
    timer_.cancel();
    if (stream_)
      stream_->close();
  }

private:
  void connect() {
    if (ended_ || owner_.stopping)
      return;
    auto& ep = owner_.endpoints[index_];
    json create{{"key", base64_encode(req_.key)}};
    auto end = req_.prefix ? prefix_end(req_.key) : req_.range_end;
    if (!end.empty())
      create["range_end"] = base64_encode(end);
    if (have_revision_)
      create["start_revision"] = std::to_string(last_revision_ + 1);
    if (req_.prev_kv)
      create["prev_kv"] = true;
    if (req_.progress_notify)
      create["progress_notify"] = true;
    stream_.emplace(owner_.ioc);
    parser_.emplace();
    parser_->body_limit(boost::none);
    parser_->on_chunk_body(on_chunk_);
    buffer_.clear();
    pending_.clear();
    http_req_ = {};
    http_req_.method(bhttp::verb::post);
    http_req_.target("/v3/watch");
    http_req_.version(11);
    http_req_.set(bhttp::field::host, ep.host_field);
    http_req_.set(bhttp::field::content_type, "application/json");
    // Without it a member that lost quorum keeps the stream silent (§6.8).
    http_req_.set("Grpc-Metadata-hasleader", "true");
    http_req_.body() = json{{"create_request", create}}.dump();
    http_req_.prepare_payload();
    // Connect, write and header are bounded; the stream itself is not.
    stream_->expires_after(owner_.options.attempt_timeout);
    auto self = shared_from_this();
    stream_->async_connect(
      ep.addresses, [self](beast::error_code ec, const tcp::endpoint&) {
        if (self->ended_)
          return;
        if (ec)
          return self->broken("connect: " + ec.message());
        bhttp::async_write(*self->stream_, self->http_req_,
                           [self](beast::error_code ec, std::size_t) {
                             if (self->ended_)
                               return;
                             if (ec)
                               return self->broken("write: " + ec.message());
                             self->read_header();
                           });
      });
  }

  void read_header() {
    bhttp::async_read_header(
      *stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (self->ended_)
          return;
        if (ec)
          return self->broken("read: " + ec.message());
        auto status = self->parser_->get().result_int();
        if (status != 200)
          return self->broken("HTTP " + std::to_string(status));
        self->stream_->expires_never();
        bhttp::async_read(*self->stream_, self->buffer_, *self->parser_,
                          [self](beast::error_code ec, std::size_t) {
                            if (self->ended_)
                              return;
                            if (self->reconnect_why_.empty())
                              self->reconnect_why_
                                = ec ? "stream: " + ec.message()
                                     : "stream ended";
                            self->broken(self->reconnect_why_);
                          });
      });
  }

  /// Bytes of the stream: whole lines are messages; the rest waits.
  void feed(beast::string_view body, beast::error_code& ec) {
    pending_.append(body.data(), body.size());
    std::size_t start = 0;
    for (;;) {
      auto nl = pending_.find('\n', start);
      if (nl == std::string::npos)
        break;
      auto line = pending_.substr(start, nl - start);
      start = nl + 1;
      if (!on_line(line)) {
        // Stop reading: the completion of async_read reconnects or ends.
        ec = net::error::operation_aborted;
        pending_.clear();
        return;
      }
    }
    pending_.erase(0, start);
    if (pending_.size() > owner_.options.max_body_bytes) {
      reconnect_why_ = "message too large";
      ec = net::error::operation_aborted;
      pending_.clear();
    }
  }

  /// One message; false when the stream must stop.
  bool on_line(const std::string& line) {
    if (ended_)
      return false;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      return true;
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      reconnect_why_ = "bad message: " + log_text(line);
      return false;
    }
    if (auto e = j.find("error"); e != j.end()) {
      auto msg = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                   ? (*e)["message"].get<std::string>()
                   : log_text(e->dump());
      reconnect_why_ = "error: " + msg;
      return false;
    }
    auto res = j.find("result");
    if (res == j.end() || !res->is_object())
      return true;
    auto& r = *res;
    watch_update u;
    u.revision = header_revision(r);
    auto compact = i64(r, "compact_revision");
    if (compact > 0) {
      u.what = watch_update::kind::compacted;
      u.compact_revision = compact;
      ended_ = true;
      owner_.watches.erase(id_);
      guarded(cb_, u);
      return false;
    }
    if (flag(r, "canceled")) {
      auto reason = r.find("cancel_reason");
      reconnect_why_ = "canceled"
                       + (reason != r.end() && reason->is_string()
                            ? ": " + reason->get<std::string>()
                            : std::string());
      return false;
    }
    if (flag(r, "created")) {
      backoff_ = owner_.options.watch_backoff;
      if (!have_revision_) {
        last_revision_ = u.revision;
        have_revision_ = true;
      }
      u.what = watch_update::kind::created;
      guarded(cb_, u);
      return !ended_;
    }
    auto events = r.find("events");
    if (events != r.end() && events->is_array() && !events->empty()) {
      u.what = watch_update::kind::events;
      for (auto& e : *events) {
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
        last_revision_ = std::max(last_revision_, ev.kv.mod_revision);
        have_revision_ = true;
        u.events.push_back(std::move(ev));
      }
      guarded(cb_, u);
      return !ended_;
    }
    // No events: a progress notification up to the header's revision.
    u.what = watch_update::kind::progress;
    if (u.revision > last_revision_) {
      last_revision_ = u.revision;
      have_revision_ = true;
    }
    guarded(cb_, u);
    return !ended_;
  }

  /// The stream is gone: tell, then the next endpoint after a backoff.
  void broken(std::string why) {
    if (ended_ || owner_.stopping)
      return;
    if (stream_)
      stream_->close();
    pending_.clear(); // a half line is never delivered
    reconnect_why_.clear();
    auto& ep = owner_.endpoints[index_];
    spdlog::info("etcd client: watch on {} broke: {}", ep.text, why);
    watch_update u;
    u.what = watch_update::kind::broken;
    u.revision = last_revision_;
    u.message = ep.text + ": " + why;
    guarded(cb_, u);
    if (ended_)
      return;
    index_ = (index_ + 1) % owner_.endpoints.size();
    timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, owner_.options.watch_backoff_max);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->connect();
    });
  }

  impl& owner_;
  uint64_t id_;
  watch_request req_;
  etcd_client::watch_callback cb_;
  net::steady_timer timer_;
  milliseconds backoff_;
  std::size_t index_ = 0;
  int64_t last_revision_ = 0;
  bool have_revision_ = false;
  bool ended_ = false;
  std::string reconnect_why_;
  std::string pending_;
  std::function<std::size_t(std::uint64_t, beast::string_view,
                            beast::error_code&)>
    on_chunk_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> http_req_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
};

// -- lease keepers ------------------------------------------------------------------

/// Grants a lease, renews it every TTL/3, retries failed renewals until the
/// TTL has run out since the last success, then reports it lost.
class keeper_state : public std::enable_shared_from_this<keeper_state> {
public:
  keeper_state(impl& owner, uint64_t id, std::chrono::seconds ttl,
               std::function<void(int64_t)> on_granted,
               std::function<void(int64_t)> on_lost)
    : owner_(owner),
      id_(id),
      ttl_(std::max<int64_t>(1, ttl.count())),
      status_(std::make_shared<lease_status>()),
      on_granted_(std::move(on_granted)),
      on_lost_(std::move(on_lost)),
      renew_timer_(owner.ioc),
      expiry_timer_(owner.ioc) {
  }

  std::shared_ptr<const lease_status> status() const {
    return status_;
  }

  void start() {
    grant();
  }

  /// No more callbacks; revokes the lease when asked (best effort).
  void stop(bool revoke) {
    if (done_)
      return;
    done_ = true;
    renew_timer_.cancel();
    expiry_timer_.cancel();
    if (revoke && status_->id() != 0)
      owner_.call("/v3/lease/revoke",
                  json{{"ID", std::to_string(status_->id())}}.dump(),
                  clock_type::now() + period(), once([](reply) {}));
  }

private:
  milliseconds period() const {
    return milliseconds(ttl_ * 1000 / 3);
  }

  milliseconds retry_delay() const {
    return std::min(milliseconds(ttl_ * 100), milliseconds(500));
  }

  void grant() {
    if (done_)
      return;
    auto sent = clock_type::now();
    owner_.call("/v3/lease/grant", json{{"TTL", ttl_}}.dump(), sent + period(),
                once([self = shared_from_this(), sent](reply r) {
                  if (r.error.kind == errc::client_stopped || self->done_)
                    return;
                  auto id = r.error ? 0 : i64(r.body, "ID");
                  if (id == 0) {
                    spdlog::warn("etcd client: lease grant failed: {}",
                                 r.error.message);
                    return self->after(self->period(), &keeper_state::grant);
                  }
                  self->status_->id_ = id;
                  self->renewed(sent);
                  guarded(self->on_granted_, id);
                }));
  }

  void renew() {
    if (done_)
      return;
    auto sent = clock_type::now();
    auto expiry = last_ok_ + std::chrono::seconds(ttl_);
    owner_.call("/v3/lease/keepalive",
                json{{"ID", std::to_string(status_->id())}}.dump(),
                std::min(expiry, sent + period()),
                once([self = shared_from_this(), sent](reply r) {
                  if (r.error.kind == errc::client_stopped || self->done_)
                    return;
                  if (!r.error) {
                    if (i64(r.body, "TTL") > 0)
                      return self->renewed(sent);
                    spdlog::warn("etcd client: lease {} is gone",
                                 self->status_->id());
                    return self->lose();
                  }
                  spdlog::warn("etcd client: lease {} renewal failed: {}",
                               self->status_->id(), r.error.message);
                  self->after(self->retry_delay(), &keeper_state::renew);
                }));
  }

  /// A grant or renewal sent at `sent` succeeded.
  void renewed(clock_type::time_point sent) {
    last_ok_ = sent;
    status_->last_ok_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             sent.time_since_epoch())
                             .count();
    expiry_timer_.expires_at(sent + std::chrono::seconds(ttl_));
    expiry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && !self->done_)
        self->lose();
    });
    after(period(), &keeper_state::renew);
  }

  void lose() {
    if (done_)
      return;
    done_ = true;
    status_->lost_ = true;
    renew_timer_.cancel();
    expiry_timer_.cancel();
    auto id = status_->id();
    spdlog::warn("etcd client: lease {} lost", id);
    owner_.keepers.erase(id_); // `this` lives on in the caller's shared_ptr
    guarded(on_lost_, id);
  }

  void after(milliseconds d, void (keeper_state::*step)()) {
    renew_timer_.expires_after(d);
    renew_timer_.async_wait(
      [self = shared_from_this(), step](beast::error_code ec) {
        if (!ec && !self->done_)
          ((*self).*step)();
      });
  }

  impl& owner_;
  uint64_t id_;
  int64_t ttl_;
  std::shared_ptr<lease_status> status_;
  std::function<void(int64_t)> on_granted_;
  std::function<void(int64_t)> on_lost_;
  net::steady_timer renew_timer_;
  net::steady_timer expiry_timer_;
  clock_type::time_point last_ok_;
  bool done_ = false;
};

// -- the client ---------------------------------------------------------------------

etcd_client::etcd_client(etcd_options options)
  : impl_(std::make_shared<impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.endpoints.empty())
    impl_->config_error = "no etcd endpoints";
  // Endpoints are resolved once, here (numeric hosts do not wait).
  tcp::resolver resolver(impl_->ioc);
  for (auto& text : impl_->options.endpoints) {
    url_parts parts;
    if (parse_url(text, parts) != url_error::none || parts.scheme != "http") {
      impl_->config_error = "bad etcd endpoint: " + log_text(text);
      break;
    }
    boost::system::error_code ec;
    auto addresses = resolver.resolve(parts.host, parts.port, ec);
    if (ec) {
      impl_->config_error = "cannot resolve " + text + ": " + ec.message();
      break;
    }
    impl_->endpoints.push_back(
      {text, round_trip::host_field(parts.host, parts.port), addresses});
  }
  if (!impl_->config_error.empty())
    spdlog::error("etcd client: {}", impl_->config_error);
  impl_->thread = std::thread([ioc = &impl_->ioc] { ioc->run(); });
}

etcd_client::~etcd_client() {
  // Watches and keepers end silently; unary calls report client_stopped.
  net::post(impl_->ioc, [i = impl_.get()] { i->stopping = true; });
  impl_->work.reset();
  impl_->ioc.stop();
  impl_->thread.join();
  impl_->stopping = true;
  impl_->watches.clear();
  impl_->keepers.clear();
  impl_.reset(); // the io_context drops what it holds: calls report now
}

namespace {

clock_type::time_point deadline_of(milliseconds timeout) {
  timeout = std::clamp(timeout, milliseconds{0},
                       milliseconds{std::chrono::hours{24}});
  return clock_type::now() + timeout;
}

template <class R, class Convert>
once typed(std::function<void(R)> done, Convert convert) {
  return once([done = std::move(done), convert](reply r) {
    R out;
    if (r.error)
      out.error = std::move(r.error);
    else
      out = convert(r.body);
    done(std::move(out));
  });
}

} // namespace

void etcd_client::range(range_request r, milliseconds timeout,
                        callback<range_result> done) {
  impl_->call("/v3/kv/range", range_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), range_of));
}

void etcd_client::put(put_request r, milliseconds timeout,
                      callback<put_result> done) {
  impl_->call("/v3/kv/put", put_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), put_of));
}

void etcd_client::delete_range(delete_request r, milliseconds timeout,
                               callback<delete_result> done) {
  impl_->call("/v3/kv/deleterange", delete_json(r).dump(), deadline_of(timeout),
              typed(std::move(done), delete_of));
}

void etcd_client::txn(txn_request r, milliseconds timeout,
                      callback<txn_result> done) {
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
  // A conditional write is never sent twice: if its first attempt applied
  // unseen, the second would fail its own compares and report the write as
  // not done. Its caller settles the unknown outcome instead.
  bool writes = false;
  for (auto* ops : {&r.success, &r.failure})
    for (auto& op : *ops)
      writes = writes || op.op != txn_op::kind::range;
  bool resend = r.compares.empty() || !writes;
  impl_->call("/v3/kv/txn", j.dump(), deadline_of(timeout),
              typed(std::move(done), [](const json& b) {
                txn_result t;
                t.revision = header_revision(b);
                t.succeeded = flag(b, "succeeded");
                auto rs = b.find("responses");
                if (rs != b.end() && rs->is_array())
                  for (auto& x : *rs) {
                    txn_op_result o;
                    if (auto p = x.find("response_put"); p != x.end()) {
                      o.op = txn_op::kind::put;
                      o.put = put_of(*p);
                    } else if (auto g = x.find("response_range"); g != x.end()) {
                      o.op = txn_op::kind::range;
                      o.range = range_of(*g);
                    } else if (auto d = x.find("response_delete_range");
                               d != x.end()) {
                      o.op = txn_op::kind::del;
                      o.del = delete_of(*d);
                    }
                    t.responses.push_back(std::move(o));
                  }
                return t;
              }),
              resend);
}

namespace {

lease_result lease_of(const json& b) {
  lease_result l;
  l.revision = header_revision(b);
  l.id = i64(b, "ID");
  l.ttl = i64(b, "TTL");
  return l;
}

} // namespace

void etcd_client::lease_grant(int64_t ttl_seconds, milliseconds timeout,
                              callback<lease_result> done) {
  impl_->call("/v3/lease/grant", json{{"TTL", ttl_seconds}}.dump(),
              deadline_of(timeout), typed(std::move(done), lease_of));
}

void etcd_client::lease_revoke(int64_t id, milliseconds timeout,
                               callback<lease_result> done) {
  impl_->call("/v3/lease/revoke", json{{"ID", std::to_string(id)}}.dump(),
              deadline_of(timeout), typed(std::move(done), lease_of));
}

void etcd_client::lease_keepalive(int64_t id, milliseconds timeout,
                                  callback<lease_result> done) {
  impl_->call("/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump(),
              deadline_of(timeout), typed(std::move(done), lease_of));
}

void etcd_client::lease_time_to_live(int64_t id, bool keys,
                                     milliseconds timeout,
                                     callback<lease_ttl_result> done) {
  json j{{"ID", std::to_string(id)}};
  if (keys)
    j["keys"] = true;
  impl_->call("/v3/lease/timetolive", j.dump(), deadline_of(timeout),
              typed(std::move(done), [](const json& b) {
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
              }));
}

void etcd_client::status(milliseconds timeout, callback<status_result> done) {
  impl_->call("/v3/maintenance/status", "{}", deadline_of(timeout),
              typed(std::move(done), [](const json& b) {
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
              }));
}

void etcd_client::compact(int64_t revision, milliseconds timeout,
                          callback<put_result> done) {
  impl_->call("/v3/kv/compaction",
              json{{"revision", std::to_string(revision)}, {"physical", true}}.dump(),
              deadline_of(timeout), typed(std::move(done), [](const json& b) {
                put_result r;
                r.revision = header_revision(b);
                return r;
              }));
}

uint64_t etcd_client::watch(watch_request r, watch_callback on_update) {
  static std::atomic<uint64_t> ids{1};
  auto id = ids++;
  net::post(impl_->ioc, [i = impl_.get(), id, r = std::move(r),
                         cb = std::move(on_update)]() mutable {
    auto w = std::make_shared<watch_state>(*i, id, std::move(r), std::move(cb));
    i->watches[id] = w;
    w->start();
  });
  return id;
}

void etcd_client::cancel_watch(uint64_t id) {
  net::post(impl_->ioc, [i = impl_.get(), id] {
    auto w = i->watches.find(id);
    if (w == i->watches.end())
      return;
    w->second->cancel();
    i->watches.erase(w);
  });
}

std::pair<uint64_t, std::shared_ptr<const lease_status>>
etcd_client::keep_lease(std::chrono::seconds ttl,
                        std::function<void(int64_t)> on_granted,
                        std::function<void(int64_t)> on_lost) {
  static std::atomic<uint64_t> ids{1};
  auto id = ids++;
  auto k = std::make_shared<keeper_state>(*impl_, id, ttl, std::move(on_granted),
                                          std::move(on_lost));
  auto status = k->status();
  net::post(impl_->ioc, [i = impl_.get(), id, k] {
    i->keepers[id] = k;
    k->start();
  });
  return {id, status};
}

void etcd_client::stop_keeper(uint64_t id, bool revoke) {
  net::post(impl_->ioc, [i = impl_.get(), id, revoke] {
    auto k = i->keepers.find(id);
    if (k == i->keepers.end())
      return;
    k->second->stop(revoke);
    i->keepers.erase(k);
  });
}

} // namespace vb::etcd
