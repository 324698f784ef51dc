// One outbound connection, plain or TLS: see connection.hpp.
#include "link/connection.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <openssl/ssl.h>

namespace vb::round_trip {

namespace beast = boost::beast;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;

connection::connection(net::any_io_executor ex, const tls_target& tls)
  : tcp_(std::move(ex)) {
  if (!tls.context)
    return;
  tls_.emplace(tcp_, *tls.context);
  tls_->set_verify_mode(ssl::verify_peer);
  tls_->set_verify_callback(ssl::host_name_verification(tls.server_name));
  beast::error_code ec;
  net::ip::make_address(tls.server_name, ec);
  if (ec) // SNI names hosts only, never an address
    SSL_set_tlsext_host_name(tls_->native_handle(), tls.server_name.c_str());
}

void connection::open(const tcp::resolver::results_type& addresses,
                      opened done) {
  tcp_.async_connect(
    addresses, [this, done = std::move(done)](beast::error_code ec,
                                              const tcp::endpoint&) mutable {
      if (ec)
        return done(ec, false);
      beast::error_code ignored;
      tcp_.socket().set_option(tcp::no_delay(true), ignored);
      if (!tls_)
        return done(ec, false);
      tls_->async_handshake(ssl::stream_base::client,
                            [done = std::move(done)](beast::error_code ec) {
                              done(ec, true);
                            });
    });
}

std::shared_ptr<connection> connection::on(net::any_io_executor ex,
                                           std::shared_ptr<connection> self) {
  if (tls_ || tcp_.get_executor() == ex)
    return self;
  beast::error_code ec;
  auto& sock = tcp_.socket();
  auto protocol = sock.local_endpoint(ec).protocol();
  if (ec)
    return nullptr;
  auto fd = sock.release(ec);
  if (ec)
    return nullptr;
  auto moved = std::make_shared<connection>(ex, tls_target{});
  moved->tcp_.socket().assign(protocol, fd, ec);
  return ec ? nullptr : moved;
}

bool connection::quiet() {
  auto& sock = tcp_.socket();
  if (!sock.is_open())
    return false;
  char byte;
  auto n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void connection::close() {
  beast::error_code ignored;
  tcp_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  tcp_.close();
}

std::shared_ptr<ssl::context> client_context(const std::string& ca,
                                             const std::string& certificate,
                                             const std::string& key,
                                             std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                   | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                   | ssl::context::no_tlsv1_1);
  beast::error_code ec;
  ctx->load_verify_file(ca, ec);
  if (ec) {
    error = "cannot read the CA file " + ca + ": " + ec.message();
    return nullptr;
  }
  if (certificate.empty() != key.empty()) {
    error = "a client certificate needs its key, and a key its certificate";
    return nullptr;
  }
  if (!certificate.empty()) {
    ctx->use_certificate_chain_file(certificate, ec);
    if (ec) {
      error = "cannot read the certificate file " + certificate + ": "
              + ec.message();
      return nullptr;
    }
    ctx->use_private_key_file(key, ssl::context::pem, ec);
    if (ec) {
      error = "cannot read the key file " + key + " (or it does not match "
              "the certificate): " + ec.message();
      return nullptr;
    }
  }
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

bool is_tls_error(const beast::error_code& ec) {
  // OpenSSL's own errors; not the stream's (a cut connection is truncated).
  return ec.category() == net::error::get_ssl_category();
}

} // namespace vb::round_trip
