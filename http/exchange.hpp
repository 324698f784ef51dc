// One request's bytes through the front end without a socket: the same
// parser limits, header checks (RFC 9112), target handling, router and API
// a connection uses, to the bytes of the response. The fuzz target of the
// front end (fuzz/http_request.cpp) and unit tests drive the server's
// request path with it; the server itself reads from sockets
// (http/server.cpp), through the same functions (http/request.hpp).
//
// A backend in memory for it: tests/memory_backend.hpp (the server's actors
// with stores in memory and providers that refuse every call).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace vb {

class api;
struct server_options;

/// Parses `bytes` as one HTTP request (what is left after it is ignored;
/// a request cut short is answered as a connection closing mid-request
/// would be: nothing) and answers it with `a`. `done` is called exactly
/// once, inline or from a CAF thread, with the serialized response
/// (status line, headers, body), or with an empty string when a
/// connection would have been closed without an answer.
void exchange(const api& a, const server_options& opts,
              std::string_view bytes, std::function<void(std::string)> done);

} // namespace vb
