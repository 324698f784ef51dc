// The reading of a provider's answer: see answer.hpp.
#include "link/answer.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include "link/http_client.hpp"

namespace vb::answer {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;

namespace {

/// A SyncReadStream over bytes in memory: what a socket delivers, `chunk`
/// bytes at a time, then end of stream (the provider closed).
class memory_stream {
public:
  memory_stream(std::string_view bytes, std::size_t chunk)
    : bytes_(bytes), chunk_(std::max<std::size_t>(chunk, 1)) {
  }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers,
                        boost::system::error_code& ec) {
    ec = {};
    if (pos_ == bytes_.size()) {
      ec = net::error::eof;
      return 0;
    }
    auto n = std::min(chunk_, bytes_.size() - pos_);
    n = net::buffer_copy(buffers, net::buffer(bytes_.data() + pos_, n));
    pos_ += n;
    return n;
  }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    auto n = read_some(buffers, ec);
    if (ec)
      throw boost::system::system_error(ec);
    return n;
  }

private:
  std::string_view bytes_;
  std::size_t chunk_;
  std::size_t pos_ = 0;
};

/// The result of a whole response; moves the body out.
http_result answered(round_trip::response& res) {
  http_result r;
  r.status = static_cast<int>(res.result_int());
  r.body = std::move(res.body());
  return r;
}

} // namespace

round_trip::reading rules() {
  return {http_client::max_body_bytes, status_problem};
}

std::string describe(const boost::system::error_code& ec) {
  if (ec == beast::error::timeout)
    return "timeout";
  if (ec == net::error::connection_refused)
    return "connection refused";
  if (ec == net::error::host_not_found
      || ec == net::error::host_not_found_try_again
      || ec == net::error::no_data)
    return "host not found";
  if (ec == bhttp::error::body_limit)
    return "response too large";
  if (ec == bhttp::error::header_limit)
    return "response headers too large";
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message
      || ec == net::error::eof)
    return "connection closed";
  return ec.message();
}

std::string status_problem(const response_parser& p) {
  auto status = p.get().result_int();
  if (status >= 200 && status <= 599)
    return {};
  return "bad status " + std::to_string(status);
}

http_result failure(std::string error) {
  http_result r;
  r.error = std::move(error);
  r.timed_out = r.error == "timeout";
  return r;
}

http_result result_of(round_trip::outcome o) {
  if (o.dropped)
    return failure("client stopped");
  if (o.at == round_trip::step::done)
    return answered(o.res);
  if (!o.refused.empty())
    return failure(std::move(o.refused));
  return failure(describe(o.error));
}

http_result read_answer(std::string_view bytes, bool head_request,
                        std::size_t chunk, bool* reusable) {
  if (reusable)
    *reusable = false;
  memory_stream stream(bytes, chunk);
  beast::flat_buffer buffer;
  response_parser parser;
  auto how = rules();
  round_trip::prepare(parser, how, head_request);
  boost::system::error_code ec;
  bhttp::read_header(stream, buffer, parser, ec);
  if (ec)
    return failure(describe(ec));
  if (auto why = round_trip::refusal(how, parser); !why.empty())
    return failure(std::move(why));
  bhttp::read(stream, buffer, parser, ec);
  if (ec)
    return failure(describe(ec));
  if (reusable)
    *reusable = round_trip::reusable(parser, buffer.size());
  return answered(parser.get());
}

} // namespace vb::answer
