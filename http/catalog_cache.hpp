// The list answers polled by frontends and providers (GET /api/bots/providers,
// GET /api/bots from the registry's catalog, GET /api/lobby from the lobby
// directory's listing), rendered once per version and shared: a poll of an
// unchanged fleet costs no JSON work. Each has a strong ETag from its
// version, is answered 304 to an If-None-Match that names it, and is sent
// gzip-compressed (compressed once per version) to a client that accepts it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace vb {

struct provider_catalog;
struct lobby_listing;
struct api_request;
struct api_reply;

/// One rendered body at one version, with its validator; the gzip form is
/// made the first time a client asks for it.
struct cached_body {
  std::string etag; // with its quotes: "p-<epoch>-<version>"
  std::shared_ptr<const std::string> body;
  mutable std::shared_ptr<const std::string> gzip;
};

/// What one thread rendered of the catalog at one version.
struct rendered_catalog {
  uint64_t version = 0;
  cached_body providers; // {"providers": [...]}
  cached_body bots;      // {"bots": [...], "providers": {...}}
};

/// The renderings of `c`, from this thread's cache when its version is
/// the cached one (each CAF worker keeps its own: no lock, no sharing).
const rendered_catalog& rendered(const provider_catalog& c);

/// GET /api/lobby's body for `l`, cached per thread like the catalog's.
const cached_body& rendered(const lobby_listing& l);

/// The request headers a conditional answer depends on, copied: the
/// answer is made on a CAF thread, after the request's buffers may be gone.
struct request_conditions {
  std::string if_none_match;
  std::string accept_encoding;
};
request_conditions conditions(const api_request& req);

/// The answer for `b` to a request with `req`'s headers: 304 without a body when its If-None-Match
/// names the current version, else 200 with the body, gzip-compressed when
/// the client accepts gzip (and the body is worth compressing). Both carry
/// the ETag, `Vary: Accept-Encoding` and `Cache-Control: no-cache` (every
/// poll revalidates).
api_reply conditional_reply(const request_conditions& req, const cached_body& b);

/// The gzip form of `data` (zlib, level 6, a gzip header and trailer).
std::string gzip_compress(const std::string& data);

} // namespace vb
