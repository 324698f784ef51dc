// The command line of voicebot-server: the config file first, flags over it.
#pragma once

#include <optional>

#include "model/config.hpp"

namespace vb {

/// Parses argv into options. On --help, prints the help and returns the
/// exit code 0 in `exit_code`; on a bad value, prints a clear message and
/// returns exit code 2. Otherwise returns the options.
std::optional<server_options> parse_server_options(int argc, char** argv,
                                                   int& exit_code);

} // namespace vb
