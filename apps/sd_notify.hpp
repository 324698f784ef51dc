// systemd's readiness protocol without libsystemd: a datagram with
// "READY=1", "STOPPING=1", ... to the AF_UNIX socket named by $NOTIFY_SOCKET
// (a path, or an abstract name starting with '@'). Without the variable it
// does nothing, so the server runs the same under systemd (Type=notify) and
// anywhere else.
#pragma once

#include <string>

namespace vb {

/// Sends `state` (newline-separated assignments) to $NOTIFY_SOCKET. Returns
/// true when it was sent, false when the variable is unset or sending
/// failed (`error` says why; unset is not an error).
bool sd_notify(const std::string& state, std::string* error = nullptr);

} // namespace vb
