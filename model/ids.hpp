// Identifiers: random (version 4) UUIDs, like the original server's
// uuid.uuid4(), for providers, lobbies and sessions.
#pragma once

#include <random>
#include <string>

namespace vb {

std::string new_uuid(std::mt19937_64& rng);

} // namespace vb
