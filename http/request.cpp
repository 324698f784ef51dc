#include "http/request.hpp"

#include <sstream>

#include <boost/beast/core.hpp>

#include "http/exchange.hpp"
#include "http/routes.hpp"

namespace vb {

namespace beast = boost::beast;

namespace {

constexpr const char* server_name = "voicebot-server";

api_reply bad_request(std::string_view detail) {
  return api::error(400, detail, "bad_request");
}

template <class Response>
void decorate(Response& res, const api_reply& r, bool has_body,
              const response_flags& f) {
  res.set(bhttp::field::server, server_name);
  // Every body is what its Content-Type says: no browser guesses a script
  // or a page from a JSON answer.
  res.set("X-Content-Type-Options", "nosniff");
  if (has_body)
    res.set(bhttp::field::content_type, "application/json");
  for (auto& [name, value] : r.headers)
    res.set(name, value);
  if (!f.allowed_origin.empty()) {
    res.set(bhttp::field::access_control_allow_origin, f.allowed_origin);
    // A listing varies by Accept-Encoding too (http/catalog_cache.hpp).
    auto vary = res[bhttp::field::vary];
    res.set(bhttp::field::vary,
            vary.empty() ? std::string{"Origin"} : std::string{vary} + ", Origin");
  }
  res.keep_alive(f.keep_alive);
  // An HTTP/1.0 client keeps the connection only when told so.
  if (f.http10 && f.keep_alive)
    res.set(bhttp::field::connection, "keep-alive");
  res.prepare_payload();
  // A 304 has no body, and no Content-Length of its own either (that would
  // be the 200's, RFC 9110 §15.4.5).
  if (r.status == 304)
    res.erase(bhttp::field::content_length);
  if (f.head) {
    // The headers GET would send, Content-Length included; no body.
    auto length = res.payload_size();
    res.body() = {};
    if (length)
      res.content_length(*length);
  }
}

} // namespace

void limit(request_parser_t& parser, const server_options& opts) {
  parser.body_limit(opts.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
}

std::optional<api_reply> parse_failure(const beast::error_code& ec) {
  if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout
      || ec == boost::asio::error::connection_reset
      || ec == boost::asio::error::eof
      || ec == boost::asio::error::operation_aborted)
    return std::nullopt;
  if (ec == bhttp::error::body_limit)
    return api::error(413, "Request body too large", "body_too_large");
  if (ec == bhttp::error::header_limit)
    return api::error(431, "Request header fields too large",
                      "headers_too_large");
  return bad_request("Malformed HTTP request");
}

std::optional<api_reply> header_refusal(const request_parser_t& parser) {
  auto& req = parser.get();
  if (req.version() < 11 && parser.chunked())
    return bad_request("Chunked transfer encoding needs HTTP/1.1");
  if (req.version() >= 11 && req.count(bhttp::field::host) != 1)
    return bad_request("HTTP/1.1 needs exactly one Host header");
  // Duplicate or list-valued lengths, and a length beside a transfer
  // coding, are how requests are smuggled past a proxy: refuse them.
  auto lengths = req.count(bhttp::field::content_length);
  if (lengths > 1
      || (lengths == 1
          && req[bhttp::field::content_length].find(',')
               != beast::string_view::npos))
    return bad_request("Conflicting Content-Length");
  auto codings = req.count(bhttp::field::transfer_encoding);
  if (codings > 0 && lengths > 0)
    return bad_request("Transfer-Encoding with Content-Length");
  // A transfer coding that does not end in chunked leaves the body's end
  // unknown: refuse it, or the next bytes would be read as a request.
  if (codings > 0 && !req.chunked())
    return bad_request("Unsupported transfer encoding");
  auto expect = req[bhttp::field::expect];
  if (!expect.empty() && !beast::iequals(expect, "100-continue"))
    return api::error(417, "Expectation not supported", "expectation_failed");
  return std::nullopt;
}

std::optional<api_reply> resolve_target(std::string_view target,
                                        std::string_view base_path,
                                        std::string& path,
                                        std::string_view& query) {
  // Absolute form (RFC 9112 §3.2.2): routed by its path.
  for (std::string_view scheme : {"http://", "https://"})
    if (target.size() > scheme.size()
        && beast::iequals(target.substr(0, scheme.size()), scheme)) {
      auto rest = target.substr(scheme.size());
      auto slash = rest.find_first_of("/?");
      target = slash == std::string_view::npos ? std::string_view{"/"}
                                               : rest.substr(slash);
      break;
    }
  if (target.empty() || target.front() != '/')
    return bad_request("Malformed request target");
  auto q = target.find('?');
  query = q == std::string_view::npos ? std::string_view{}
                                      : target.substr(q + 1);
  // An escaped '/' would make one path segment look like two to the
  // router, or two like one; an escaped NUL has no place in a name.
  if (!percent_decode(target.substr(0, q), path, std::string_view{"/\0", 2}))
    return bad_request("Malformed or ambiguous percent-encoding in the path");
  if (!base_path.empty()) {
    if (path.compare(0, base_path.size(), base_path) != 0
        || (path.size() > base_path.size() && path[base_path.size()] != '/'))
      return api::error(404, "Not Found", "not_found");
    path.erase(0, base_path.size());
  }
  return std::nullopt;
}

api_request api_view(const request_t& req, std::string_view path,
                     std::string_view query) {
  api_request ar;
  ar.method = req.method() == bhttp::verb::head
                ? std::string_view{"GET"}
                : std::string_view{req.method_string().data(),
                                   req.method_string().size()};
  ar.path = path;
  ar.query = query;
  ar.body = req.body();
  auto key = req[std::string_view{"X-Provider-Key"}];
  ar.provider_key = std::string_view{key.data(), key.size()};
  if (auto f = req.find(std::string_view{"Idempotency-Key"}); f != req.end())
    ar.idempotency_key = std::string_view{f->value().data(),
                                          f->value().size()};
  auto inm = req[bhttp::field::if_none_match];
  ar.if_none_match = std::string_view{inm.data(), inm.size()};
  auto ae = req[bhttp::field::accept_encoding];
  ar.accept_encoding = std::string_view{ae.data(), ae.size()};
  auto auth = req[bhttp::field::authorization];
  ar.authorization = std::string_view{auth.data(), auth.size()};
  return ar;
}

response_t make_response(api_reply r, const response_flags& flags) {
  response_t res{static_cast<bhttp::status>(r.status), 11};
  auto has_body = !r.body.empty();
  res.body() = std::move(r.body);
  decorate(res, r, has_body, flags);
  return res;
}

span_response_t make_span_response(const api_reply& r,
                                   const std::string& body,
                                   const response_flags& flags) {
  span_response_t res{static_cast<bhttp::status>(r.status), 11};
  res.body() = {body.data(), body.size()};
  decorate(res, r, true, flags);
  return res;
}

// -- exchange: the same path without a socket -------------------------------------

void exchange(const api& a, const server_options& opts,
              std::string_view bytes, std::function<void(std::string)> done) {
  auto answer = [done](api_reply r, response_flags flags) {
    std::ostringstream out;
    if (r.shared_body) {
      auto body = r.shared_body;
      out << make_span_response(r, *body, flags);
    } else {
      out << make_response(std::move(r), flags);
    }
    done(out.str());
  };
  request_parser_t parser;
  limit(parser, opts);
  beast::error_code ec;
  auto input = boost::asio::const_buffer{bytes.data(), bytes.size()};
  // Feeds what is left until the header is done (or all of it once it
  // is); false when the parser took nothing: it needs bytes that never
  // come (a chunk size cut short), as a connection whose peer went quiet.
  auto feed = [&] {
    auto before = input.size();
    while (input.size() > 0 && !ec) {
      auto used = parser.put(input, ec);
      input += used;
      if (ec == bhttp::error::need_more) {
        ec = {};
        if (used == 0)
          break;
      }
      if (parser.is_header_done() || parser.is_done())
        break;
    }
    return input.size() < before;
  };
  response_flags closing{false, false, false, {}};
  feed();
  if (ec) {
    auto r = parse_failure(ec);
    return r ? answer(std::move(*r), closing) : done({});
  }
  if (!parser.is_header_done())
    return done({}); // the rest of the header never came: a timeout
  if (auto r = header_refusal(parser))
    return answer(std::move(*r), closing);
  while (!parser.is_done() && input.size() > 0 && !ec)
    if (!feed())
      break;
  if (ec) {
    auto r = parse_failure(ec);
    return r ? answer(std::move(*r), closing) : done({});
  }
  if (!parser.is_done())
    return done({}); // the body never came in full: a timeout
  auto& req = parser.get();
  response_flags flags;
  flags.keep_alive = req.keep_alive();
  flags.http10 = req.version() < 11;
  flags.head = req.method() == bhttp::verb::head;
  std::string path;
  std::string_view query;
  auto target = std::string_view{req.target().data(), req.target().size()};
  if (auto r = resolve_target(target, opts.base_path, path, query))
    return answer(std::move(*r), flags);
  a.handle(api_view(req, path, query),
           [answer, flags](api_reply r) { answer(std::move(r), flags); });
}

} // namespace vb
