// One outbound connection, plain TCP or TLS over it (Asio's OpenSSL
// stream), with Beast's timeouts: what a round trip (link/round_trip.hpp)
// sends on, what a pool (link/connection_pool.hpp) keeps between round
// trips, and what an etcd watch streams on. Beast and Asio SSL are in this
// header: only link/*.cpp and etcd/*.cpp include it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace vb::round_trip {

using tcp = boost::asio::ip::tcp;

/// Where TLS goes: the client's context (its CA, and its certificate when
/// the server asks for one) and the name the server's certificate must
/// carry (a host name, or an IP address matched against its IP SANs).
struct tls_target {
  std::shared_ptr<boost::asio::ssl::context> context;
  std::string server_name;
};

class connection {
public:
  using opened = std::function<void(boost::beast::error_code, bool handshake)>;

  /// A connection not yet open; TLS when `tls` has a context.
  connection(boost::asio::any_io_executor ex, const tls_target& tls);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects to the first of `addresses` that answers, then (TLS) does the
  /// handshake, within the stream's expiry; `done(ec, handshake)` says
  /// which step failed.
  void open(const tcp::resolver::results_type& addresses, opened done);

  /// Calls `f` with the stream to read and write: the TLS stream, or TCP.
  template <class F>
  decltype(auto) with(F&& f) {
    if (tls_)
      return f(*tls_);
    return f(tcp_);
  }

  boost::beast::tcp_stream& tcp() { return tcp_; }
  bool secure() const { return tls_.has_value(); }

  /// Whether an idle connection may carry a request: still open, and the
  /// server has sent nothing since (no close, no alert, no stray bytes).
  bool quiet();

  /// A plain connection's socket on a stream of `ex` (handlers then run
  /// there), or this one as it is: a TLS stream stays on its executor, so
  /// a client that keeps TLS connections runs one thread.
  std::shared_ptr<connection> on(boost::asio::any_io_executor ex,
                                 std::shared_ptr<connection> self);

  /// Closes it at once (no TLS close_notify: the server only sees the end).
  void close();

private:
  boost::beast::tcp_stream tcp_;
  std::optional<boost::asio::ssl::stream<boost::beast::tcp_stream&>> tls_;
};

/// A TLS client context: verifies the server's certificate against `ca`,
/// and presents `certificate` with `key` when both are given; TLS 1.2 or
/// later. Null with `error` naming the file that failed.
std::shared_ptr<boost::asio::ssl::context>
client_context(const std::string& ca, const std::string& certificate,
               const std::string& key, std::string& error);

/// Whether `ec` is TLS's own (a handshake refused, a certificate not
/// trusted, an alert from the server): a setting to mend, not a network
/// fault to retry.
bool is_tls_error(const boost::beast::error_code& ec);

} // namespace vb::round_trip
