#include "tls/session.hpp"

#include <cerrno>
#include <cstring>
#include <utility>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace vb::tls {

namespace {

/// The reason of the oldest error in this thread's queue (the cause; later
/// entries say where it surfaced), then an empty queue.
std::string take_errors() {
  std::string reason;
  if (auto e = ERR_get_error(); e != 0) {
    const char* text = ERR_reason_error_string(e);
    reason = text != nullptr ? text : "error " + std::to_string(ERR_GET_REASON(e));
  }
  ERR_clear_error();
  return reason;
}

} // namespace

// -- context ------------------------------------------------------------------

context::context(ssl_ctx_st* ctx, failure_sink on_failure)
  : ctx_(ctx), on_failure_(std::move(on_failure)) {
}

context::~context() {
  SSL_CTX_free(ctx_);
}

std::shared_ptr<const context> context::load(const credentials& files,
                                             failure_sink on_failure,
                                             std::string& error) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) {
    error = "cannot make a TLS context: " + take_errors();
    return nullptr;
  }
  std::shared_ptr<const context> result{new context(ctx, std::move(on_failure))};
  auto fail = [&](const std::string& what) {
    error = what + ": " + take_errors();
    return nullptr;
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate.c_str()) != 1)
    return fail("certificate " + files.certificate);
  if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("private key " + files.key);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return fail("private key " + files.key + " does not match " + files.certificate);
  if (SSL_CTX_load_verify_locations(ctx, files.ca.c_str(), nullptr) != 1)
    return fail("CA " + files.ca);
  // A server names the CA it accepts, so a client with several picks it.
  if (auto* names = SSL_load_client_CA_file(files.ca.c_str()); names != nullptr)
    SSL_CTX_set_client_CA_list(ctx, names);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  if (SSL_CTX_set_cipher_list(ctx, "HIGH:!aNULL:!MD5") != 1)
    return fail("cipher list");
  // The CAF stream retries a write from where its buffer stands now.
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  ERR_clear_error();
  return result;
}

void context::failed(const std::string& peer, const std::string& reason) const {
  if (on_failure_)
    on_failure_(peer, reason);
}

// -- session ------------------------------------------------------------------

session::session(std::shared_ptr<const context> ctx, int fd, role r,
                 std::string peer)
  : ctx_(std::move(ctx)), peer_(std::move(peer)) {
  ERR_clear_error();
  ssl_ = SSL_new(ctx_->native());
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd) != 1) {
    SSL_free(ssl_);
    ssl_ = nullptr;
    ERR_clear_error();
    return;
  }
  if (r == role::accept)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

session::~session() {
  SSL_free(ssl_);
}

io_status session::read(void* buf, std::size_t len, std::size_t& n) {
  return step(true, buf, len, n);
}

io_status session::write(const void* buf, std::size_t len, std::size_t& n) {
  return step(false, const_cast<void*>(buf), len, n);
}

std::size_t session::pending() const {
  return ssl_ == nullptr ? 0 : static_cast<std::size_t>(SSL_pending(ssl_));
}

bool session::handshaking() const {
  return ssl_ == nullptr || SSL_is_init_finished(ssl_) == 0;
}

io_status session::step(bool reading, void* buf, std::size_t len,
                        std::size_t& n) {
  n = 0;
  if (ssl_ == nullptr || !failure_.empty())
    return io_status::failed;
  if (!SSL_is_init_finished(ssl_)) {
    auto s = handshake(reading, len);
    if (s != io_status::ok || !SSL_is_init_finished(ssl_))
      return s;
  }
  if (len == 0)
    return io_status::idle;
  ERR_clear_error();
  int ret = reading ? SSL_read(ssl_, buf, static_cast<int>(len))
                    : SSL_write(ssl_, buf, static_cast<int>(len));
  if (ret > 0) {
    n = static_cast<std::size_t>(ret);
    // A client learns the server's verdict on its certificate with the
    // first bytes it reads (TLS 1.3 sends the refusal after its Finished).
    if (reading)
      established_ = true;
    return io_status::ok;
  }
  return on_error(ret);
}

io_status session::handshake(bool reading, std::size_t len) {
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    if (SSL_is_server(ssl_))
      established_ = true;
    return io_status::ok;
  }
  // An empty write only nudged the handshake along: nothing was done.
  if (SSL_get_error(ssl_, ret) == SSL_ERROR_WANT_READ && !reading && len == 0)
    return io_status::idle;
  return on_error(ret);
}

io_status session::on_error(int ret) {
  int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return io_status::ok;
  const int saved_errno = errno;
  std::string reason = take_errors();
  if (err == SSL_ERROR_SSL) {
    if (auto v = SSL_get_verify_result(ssl_); v != X509_V_OK)
      reason += std::string{" ("} + X509_verify_cert_error_string(v) + ")";
  } else if (err == SSL_ERROR_SYSCALL && saved_errno != 0 && reason.empty()) {
    reason = std::strerror(saved_errno);
  }
  if (reason.empty())
    reason = "the connection closed";
  if (!established_) {
    failure_ = reason;
    ctx_->failed(peer_, failure_);
  }
  return io_status::failed;
}

} // namespace vb::tls
