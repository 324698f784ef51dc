// JSON conversion of the model's value types (nlohmann, found by ADL).
//
// Field names follow SPEC §2. to_json writes every field; from_json is
// tolerant, for snapshot loading: a missing or null field keeps its default,
// unknown fields are ignored. A field of the wrong type (or an unknown enum
// string) throws nlohmann::json::type_error naming the field.
// Times are doubles, unix seconds.
#pragma once

#include <cstdint>
#include <exception>
#include <string>

#include <nlohmann/json.hpp>

#include "model/types.hpp"

namespace vb {

void to_json(nlohmann::json& j, const bot_info& x);
void from_json(const nlohmann::json& j, bot_info& x);

/// {provider_id, name, base_url, description, transport, bots, registered_at,
///  last_seen, status, instance_id, heartbeat_interval, load, capacity,
///  active_runs, lease_expires_at}; base_url is "" for CAF providers; null:
/// instance_id when empty, heartbeat_interval when 0, load and capacity when
/// negative (none announced). from_json also reads snapshot_json's fields.
void to_json(nlohmann::json& j, const provider& x);
void from_json(const nlohmann::json& j, provider& x);

/// A provider as the snapshots and journals keep it: to_json's fields without
/// the volatile load, capacity, active_runs and lease_expires_at, plus
/// drain_deadline (null when 0) and drain_by_operator.
nlohmann::json snapshot_json(const provider& x);

/// {session_id, nick, is_bot, bot_name, provider_id, run_id, joined_at,
///  orphaned, moved_at}; bot_name, provider_id and run_id are "" for people,
/// moved_at is null when the member never moved. The snapshots keep the same.
void to_json(nlohmann::json& j, const session& x);
/// {session_id, nick, is_bot, bot_name}.
void to_json(nlohmann::json& j, const voice_peer& x);
void from_json(const nlohmann::json& j, session& x);

/// {id, name, private, created_at, members, sessions}; members is the number
/// of sessions (ignored when reading).
void to_json(nlohmann::json& j, const lobby& x);
void from_json(const nlohmann::json& j, lobby& x);

/// A lobby without its sessions: {id, name, private, created_at, members}
/// (GET /api/lobby).
nlohmann::json lobby_summary(const lobby& x);

/// The message of an exception, without the "[json.exception.type_error.302] "
/// prefix nlohmann puts on its own (for log lines and snapshot reasons).
std::string error_message(const std::exception& e);

} // namespace vb
