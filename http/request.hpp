// What the front end does with a request between the socket and the API,
// in functions a connection (http/server.cpp) and exchange()
// (http/exchange.hpp) share: the parser's limits and errors, the header
// checks of RFC 9112, the target (absolute form, percent-decoding, base
// path), the API's view of the request, and the response's headers.
// Beast's HTTP headers are included: only those two files include this.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "http/api.hpp"

namespace vb {

namespace bhttp = boost::beast::http;

using request_t = bhttp::request<bhttp::string_body>;
using request_parser_t = bhttp::request_parser<bhttp::string_body>;
using response_t = bhttp::response<bhttp::string_body>;
using span_response_t = bhttp::response<bhttp::span_body<const char>>;

/// Sets the front end's limits (header block, body) on a new parser.
void limit(request_parser_t& parser, const server_options& opts);

/// The answer to a parser's error (413, 431, 400); nullopt when the
/// connection just ends without one (the client left, a timeout).
std::optional<api_reply> parse_failure(const boost::beast::error_code& ec);

/// The header block is in: the answer that refuses it (400 for what RFC
/// 9112 forbids or what could smuggle a request, 417 for an unknown
/// expectation), or nullopt when the request may go on.
std::optional<api_reply> header_refusal(const request_parser_t& parser);

/// The request's target as the API sees it: absolute form taken by its
/// path, the path percent-decoded (an escaped '/' or NUL is refused), the
/// base path removed. The error answer, or nullopt with `path` and `query`
/// set (`query` points into `target`).
std::optional<api_reply> resolve_target(std::string_view target,
                                        std::string_view base_path,
                                        std::string& path,
                                        std::string_view& query);

/// The API's view of a request whose target resolved to `path`, `query`;
/// HEAD is asked as GET. Points into `req` and `path`.
api_request api_view(const request_t& req, std::string_view path,
                     std::string_view query);

/// How a response is sent on its connection.
struct response_flags {
  bool keep_alive = true;
  bool http10 = false;  // the request was HTTP/1.0
  bool head = false;    // answered as GET without the body
  std::string_view allowed_origin; // CORS: echoed when not empty
};

/// The response for `r`: status, Server, Content-Type, the reply's headers,
/// CORS, keep-alive, Content-Length (HEAD: GET's length, no body).
response_t make_response(api_reply r, const response_flags& flags);

/// The same for a cached body, written from the shared string without a
/// copy; `body` must outlive the response.
span_response_t make_span_response(const api_reply& r,
                                   const std::string& body,
                                   const response_flags& flags);

} // namespace vb
