// Mutual TLS for one non-blocking connection, on OpenSSL alone (no CAF):
// the handshake, reads and writes, and why a handshake failed. The CAF
// transport (tls/caf_transport.hpp) drives one session per connection from
// the middleman's I/O thread.
//
// OpenSSL keeps its errors in a queue per thread, and SSL_get_error reports
// SSL_ERROR_SSL whenever that queue is not empty. Every connection of the
// I/O thread shares the queue, so a session clears it before each call and
// empties it after a failure: one connection's error never reaches another.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

struct ssl_ctx_st;
struct ssl_st;

namespace vb::tls {

/// This end's certificate chain and key, and the CA that must have signed
/// the other end's certificate (PEM files).
struct credentials {
  std::string certificate;
  std::string key;
  std::string ca;
};

/// Told once per connection whose handshake failed: the peer's address and
/// OpenSSL's reason. Called on the connection's I/O thread.
using failure_sink =
  std::function<void(const std::string& peer, const std::string& reason)>;

/// This end's TLS settings, loaded once and shared by all its connections:
/// both sides must present a certificate signed by the CA
/// (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT), TLS 1.2 or later,
/// ciphers HIGH:!aNULL:!MD5.
class context {
public:
  /// The context, or nullptr with `error` saying which file failed.
  static std::shared_ptr<const context> load(const credentials& files,
                                             failure_sink on_failure,
                                             std::string& error);
  ~context();
  context(const context&) = delete;
  context& operator=(const context&) = delete;

  ssl_ctx_st* native() const { return ctx_; }
  void failed(const std::string& peer, const std::string& reason) const;

private:
  context(ssl_ctx_st* ctx, failure_sink on_failure);
  ssl_ctx_st* ctx_;
  failure_sink on_failure_;
};

/// What a read or a write did.
enum class io_status {
  ok,      // bytes moved, or none yet (the handshake or the socket waits)
  idle,    // an empty buffer: nothing was asked, nothing done
  failed,  // the connection is broken, or its handshake failed
};

enum class role { accept, connect };

class session {
public:
  /// Takes no ownership of `fd`; `peer` ("address:port") names the other
  /// end in the failure report.
  session(std::shared_ptr<const context> ctx, int fd, role r, std::string peer);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  /// False when OpenSSL could not make the connection's state.
  bool valid() const { return ssl_ != nullptr; }

  /// Reads up to `len` bytes into `buf` (`n` of them), after finishing the
  /// handshake if it is not done. n == 0 with ok: nothing to read yet.
  io_status read(void* buf, std::size_t len, std::size_t& n);
  /// Writes up to `len` bytes, after finishing the handshake.
  io_status write(const void* buf, std::size_t len, std::size_t& n);

  /// Decrypted bytes waiting inside OpenSSL (the socket may have none).
  std::size_t pending() const;
  /// True until the TLS handshake has finished (or when it failed).
  bool handshaking() const;
  /// The peer is known to have accepted this end: a server has verified the
  /// client; a client has read the server's first bytes.
  bool established() const { return established_; }
  /// Why the handshake failed; empty while it has not.
  const std::string& failure() const { return failure_; }

private:
  io_status step(bool reading, void* buf, std::size_t len, std::size_t& n);
  io_status handshake(bool reading, std::size_t len);
  io_status on_error(int ret);

  std::shared_ptr<const context> ctx_;
  ssl_st* ssl_ = nullptr;
  std::string peer_;
  std::string failure_;
  bool established_ = false;
};

} // namespace vb::tls
