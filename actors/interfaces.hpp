// The typed interfaces of voicebot-server's actors, in one place. Each
// handler has a one-line comment; the factories live in one header per actor.
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"

namespace vb {

/// Writes one snapshot file durably. Jobs are rendered and written in the
/// order they arrive; the reply is the generation number written.
using snapshot_writer_actor = caf::typed_actor<
  // Render the job and write it durably (temp file, fsync, rename, fsync dir).
  caf::replies_to<atom::write, snapshot_job>::with<uint64_t>>;

/// The sole owner of provider state and of bot_providers.json.
using registry_actor = caf::typed_actor<
  // Register or re-register a provider; answered once durable.
  caf::replies_to<atom::registration, provider_registration>::with<std::string>,
  // Mark a provider seen, optionally replacing its catalog; answers last_seen.
  caf::replies_to<atom::heartbeat, std::string, heartbeat>::with<double>,
  // Remove a provider (id, key); answered once durable.
  caf::replies_to<atom::deregister, std::string, std::string>::with<bool>,
  // One provider by id.
  caf::replies_to<atom::get, std::string>::with<provider>,
  // Every provider, ordered by registration.
  caf::replies_to<atom::list>::with<std::vector<provider>>,
  // The providers offering a bot, most recently seen first.
  caf::replies_to<atom::resolve, std::string>::with<std::vector<provider>>,
  // The providers unseen for at least the given time (for the cleanup actor).
  caf::replies_to<atom::stale, caf::timespan>::with<stale_report>,
  // Evict those of the given providers still unseen for the given time;
  // answers the evicted ids once durable.
  caf::replies_to<atom::evict, std::vector<std::string>, caf::timespan>::with<
    std::vector<std::string>>,
  // Write the current state now; answered once durable.
  caf::replies_to<atom::flush>::with<uint64_t>,
  // Periodic flush of changes that need no acknowledgement (heartbeats).
  caf::reacts_to<atom::flush, atom::sweep>>;

/// Wakes every cleanup interval and asks the registry to evict stale
/// providers, with the mass-eviction guard of SPEC §3.
using cleanup_actor = caf::typed_actor<
  // The self-rearming timer.
  caf::reacts_to<atom::sweep>>;

} // namespace vb

CAF_BEGIN_TYPE_ID_BLOCK(vb_actors, caf::id_block::vb_model::end)
  CAF_ADD_TYPE_ID(vb_actors, (vb::snapshot_writer_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::registry_actor))
  CAF_ADD_TYPE_ID(vb_actors, (vb::cleanup_actor))
CAF_END_TYPE_ID_BLOCK(vb_actors)

namespace vb {

/// Registers every message type of voicebot-server with a CAF config.
void add_message_types(caf::actor_system_config& cfg);

} // namespace vb
