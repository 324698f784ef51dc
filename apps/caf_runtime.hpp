// The CAF runtime both programs share: the protocol's message types
// (protocol/protocol.hpp, so both ends of a connection know the same wire
// types under the same names and ids), the middleman, and its heartbeats.
// The server adds its local types on top (add_local_types).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "protocol/protocol.hpp"

namespace vb {

struct caf_runtime_config : caf::actor_system_config {
  caf_runtime_config() {
    vb::add_protocol_types(*this);
    load<caf::io::middleman>();
    // Middleman heartbeats: a peer whose network silently went away is
    // noticed within the connection timeout (SPEC §5).
    set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
    set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(5)});
    set("logger.verbosity", caf::atom("quiet"));
  }

  /// Mutual TLS over caf::openssl (SPEC §5): loads the OpenSSL manager with
  /// this end's certificate chain and key and the CA that signs the other
  /// end's certificate. Every connection made or accepted through
  /// openssl::publish / the OpenSSL manager's actor then verifies the peer's
  /// certificate (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, ciphers
  /// HIGH:!aNULL:!MD5); a peer without one, or with one another CA signed,
  /// fails the handshake and is closed. Call before the actor system is made.
  void use_tls(const std::string& certificate, const std::string& key,
               const std::string& cafile) {
    load<caf::openssl::manager>();
    set("openssl.certificate", certificate);
    set("openssl.key", key);
    set("openssl.cafile", cafile);
  }
};

/// Whether `path` names a readable PEM file holding `what` (e.g.
/// "CERTIFICATE", "PRIVATE KEY"). CAF's OpenSSL module loads the files only
/// when a connection is made, and throws there; this checks at start.
inline bool readable_pem(const std::string& path, const std::string& what) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    return false;
  std::string text;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() < (1 << 20))
    text.append(buf, n);
  std::fclose(f);
  auto begin = text.find("-----BEGIN ");
  return begin != std::string::npos
         && text.find(what + "-----", begin) != std::string::npos;
}

} // namespace vb
