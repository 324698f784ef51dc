// The CAF runtime both programs share: the protocol's message types
// (protocol/protocol.hpp, so both ends of a connection know the same wire
// types under the same names and ids), the middleman, and its heartbeats.
// The server adds its local types on top (add_local_types). Mutual TLS runs
// through our own transport (tls/caf_transport.hpp), started beside it.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

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
