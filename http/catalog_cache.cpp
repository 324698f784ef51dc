#include "http/catalog_cache.hpp"

#include <cctype>
#include <cstdio>
#include <random>
#include <string_view>
#include <unordered_set>

#include <zlib.h>

#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "http/api.hpp"
#include "model/header_list.hpp"
#include "model/json.hpp"

namespace vb {

using json = nlohmann::json;

namespace {

/// Tells this process's validators from an earlier one's: a listing that
/// reads the same after a restart may still be another (its answers were
/// not all seen), and hashes are only compared within one process.
const std::string& epoch() {
  static const std::string value = [] {
    std::random_device rd;
    uint64_t v = (uint64_t{rd()} << 32) ^ rd();
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return std::string{buf};
  }();
  return value;
}

/// The validator of `body`: made of its bytes, so that every thread
/// (each renders into its own cache) names the same body alike, and a
/// change the listing does not show keeps it; the epoch tells it from an
/// earlier process's.
std::string etag_of(char kind, const std::string& body) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(std::hash<std::string>{}(body)));
  return "\"" + std::string(1, kind) + "-" + epoch() + "-" + hash + "\"";
}

std::shared_ptr<const std::string> dump(const json& j) {
  return std::make_shared<const std::string>(
    j.dump(-1, ' ', false, json::error_handler_t::replace));
}

/// The gzip form's validator: a strong ETag names one representation, so
/// the compressed body has its own ("...-gz").
std::string gzip_etag(const std::string& etag) {
  return etag.substr(0, etag.size() - 1) + "-gz\"";
}

/// Whether an If-None-Match value names `etag` or its gzip form
/// (RFC 9110 §13.1.2: weak comparison, "*" matches any).
bool names(std::string_view header, const std::string& etag) {
  auto gz = gzip_etag(etag);
  for (auto item : header_items(header)) {
    if (item == "*")
      return true;
    if (item.size() > 2 && item.substr(0, 2) == "W/")
      item.remove_prefix(2);
    if (item == etag || item == gz)
      return true;
  }
  return false;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i]))
        != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

/// Whether Accept-Encoding admits gzip: "gzip", "x-gzip" or "*" with a
/// q-value above 0 (RFC 9110 §12.5.3).
bool accepts_gzip(std::string_view header) {
  for (auto item : header_items(header)) {
    auto semi = item.find(';');
    auto coding = trim_ows(item.substr(0, semi));
    if (!iequals(coding, "gzip") && !iequals(coding, "x-gzip") && coding != "*")
      continue;
    if (semi == std::string_view::npos)
      return true;
    auto param = trim_ows(item.substr(semi + 1));
    if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=')
      return true;
    auto q = trim_ows(param.substr(2));
    // q=0, q=0.0, q=0.000: refused; anything else admits it.
    bool zero = !q.empty() && q[0] == '0';
    for (size_t i = 1; zero && i < q.size(); ++i)
      zero = q[i] == '.' || q[i] == '0';
    if (!zero)
      return true;
  }
  return false;
}

/// `b` at a new version: a body byte for byte the same as before keeps its
/// validator (and its gzip form), so a change the listing does not show (a
/// heartbeat, for GET /api/bots) costs its pollers nothing.
void renew(cached_body& b, char kind, std::shared_ptr<const std::string> body) {
  if (b.body && *b.body == *body)
    return;
  b = cached_body{etag_of(kind, *body), std::move(body), nullptr};
}

/// Below this a body is sent as it is: the gzip header and trailer, and
/// the time, buy nothing.
constexpr size_t gzip_min_bytes = 512;

} // namespace

std::string gzip_compress(const std::string& data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip wrapper; memLevel 8 as zlib's default.
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  auto rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string{};
}

request_conditions conditions(const api_request& req) {
  return {std::string{req.if_none_match}, std::string{req.accept_encoding}};
}

api_reply conditional_reply(const request_conditions& req, const cached_body& b) {
  auto gzip = accepts_gzip(req.accept_encoding) && b.body->size() >= gzip_min_bytes;
  if (gzip && !b.gzip) {
    auto z = gzip_compress(*b.body);
    if (z.empty())
      gzip = false; // zlib failed: the plain body still answers
    else
      b.gzip = std::make_shared<const std::string>(std::move(z));
  }
  auto etag = gzip ? gzip_etag(b.etag) : b.etag;
  api_reply r;
  if (!req.if_none_match.empty() && names(req.if_none_match, b.etag)) {
    r.status = 304;
  } else {
    r.status = 200;
    r.shared_body = gzip ? b.gzip : b.body;
    if (gzip)
      r.headers.emplace_back("Content-Encoding", "gzip");
  }
  r.headers.emplace_back("ETag", std::move(etag));
  r.headers.emplace_back("Vary", "Accept-Encoding");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

const rendered_catalog& rendered(const provider_catalog& c) {
  thread_local rendered_catalog cache;
  if (cache.version == c.version && cache.providers.body)
    return cache;
  json providers = json::array();
  json bots = json::array();
  json owners = json::object();
  std::unordered_set<std::string> owned_by_online;
  for (auto& p : c.providers) {
    providers.push_back(p);
    auto online = p.status == provider_status::online;
    for (auto& b : p.bots) {
      bots.push_back({{"name", b.name},
                      {"description", b.description},
                      {"provider_id", p.provider_id}});
      // A bot offered by several providers maps to the first online one.
      if (!owners.contains(b.name)
          || (online && owned_by_online.count(b.name) == 0)) {
        owners[b.name] = p.provider_id;
        if (online)
          owned_by_online.insert(b.name);
      }
    }
  }
  cache.version = c.version;
  renew(cache.providers, 'p', dump(json{{"providers", std::move(providers)}}));
  renew(cache.bots, 'b',
        dump(json{{"bots", std::move(bots)}, {"providers", std::move(owners)}}));
  return cache;
}

const cached_body& rendered(const lobby_listing& l) {
  thread_local uint64_t version = 0;
  thread_local cached_body cache;
  if (version == l.version && cache.body)
    return cache;
  json list = json::array();
  for (auto& x : l.lobbies)
    list.push_back(lobby_summary(x));
  version = l.version;
  renew(cache, 'l', dump(json{{"lobbies", std::move(list)}}));
  return cache;
}

} // namespace vb
