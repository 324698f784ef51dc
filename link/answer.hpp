// How the HTTP provider client reads a provider's answer (SPEC §4): its
// reading rules (limits, the status it acts on), the error words of
// http_result, and the result of a round trip (link/round_trip.hpp).
// link/http_client.cpp reads from its socket with these; read_answer()
// applies them to bytes in memory, so that the fuzz target
// fuzz/http_client_answer.cpp parses answers exactly as the client does,
// without a socket. Beast is in this header: only link/ and fuzz/ include
// it (actors/ see link/http_link.hpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

#include "link/http_link.hpp"
#include "link/round_trip.hpp"

namespace vb::answer {

using response_parser = round_trip::response_parser;

/// The client's reading: a body of at most http_client::max_body_bytes,
/// Beast's default 8 KiB of headers, headers only after a HEAD, and a status
/// refused by status_problem().
round_trip::reading rules();

/// The `error` of an http_result for a failed read, connect or resolve
/// (the words listed in link/http_link.hpp).
std::string describe(const boost::system::error_code& ec);

/// Why the status of a response whose header was read is not one the client
/// acts on, or empty when it is: a final status is 200-599 (RFC 9110 §15).
/// Beast accepts any three digits; a 1xx is not expected (the client sends
/// no `Expect`, asks no upgrade), and below 100 or from 600 there is no
/// class to read it by. Such an answer is no answer ("bad status N").
std::string status_problem(const response_parser& p);

/// No answer: `error` (timed_out when it is "timeout").
http_result failure(std::string error);

/// The result of a round trip to a provider: the answer, or why there is
/// none ("client stopped" when it was dropped).
http_result result_of(round_trip::outcome o);

/// `bytes` as what a provider sent before closing the connection, read as
/// the client reads its socket (headers, then the rest; `chunk` bytes per
/// read, at least 1; after the last byte, end of stream). `reusable`, when
/// not null, says whether the connection would go back to the pool (a
/// complete keep-alive response with nothing after it).
http_result read_answer(std::string_view bytes, bool head_request,
                        std::size_t chunk, bool* reusable = nullptr);

} // namespace vb::answer
