// Idempotent joins (SPEC §7): the fingerprint of a join request, and the
// durable form of the keys: the records of idempotency.journal and the
// snapshot idempotency.json (docs/journal.md lists them). The header's rule
// is check_idempotency_key in model/validate.hpp.
//
//   idempotency.journal
//     {"op":"put","entry":{key, fingerprint, lobby_id, expires_at, session}}
//     {"op":"del","key":"..."}                     expired, or past the bound
//   idempotency.json  {"format":"voicebot-server/idempotency","version":1,
//                      "journal_seq":N,"keys":[entry, ...]}
//
// Every record is idempotent (a put replaces, a delete of nothing is
// nothing), so replaying a record the snapshot already holds changes
// nothing. The decoders never throw and check the nesting depth first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/keyed_replay.hpp"
#include "model/types.hpp"

namespace vb {

constexpr const char* idempotency_format = "voicebot-server/idempotency";

/// What makes two joins the same request: the bot of the path and the body
/// as given (lobby_id, nick, provider_id; "" for a field not given), as a
/// canonical string (a JSON array). Two requests with one key and different
/// fingerprints are a reused key.
std::string join_fingerprint(std::string_view bot_name, const join_request& j);

/// One remembered key: the first accepted answer of a join.
struct idempotency_entry {
  std::string key;
  std::string fingerprint;
  std::string lobby_id;
  session answer;
  double expires_at = 0; // unix seconds
};

/// The JSON of one entry, as the snapshot and the put record hold it:
/// {"key","fingerprint","lobby_id","expires_at","session"}.
std::string idempotency_entry_json(const idempotency_entry& e);

std::string idempotency_put_record(const std::string& entry_json);
std::string idempotency_del_record(const std::string& key);

/// A snapshot assembled from rendered entries; `journal_seq` (when not 0)
/// is the last journal record it holds.
std::string
encode_idempotency_fragments(const std::vector<const std::string*>& entries,
                             uint64_t journal_seq = 0);

/// The same text from entries.
std::string encode_idempotency(const std::vector<idempotency_entry>& es,
                               uint64_t journal_seq = 0);

/// Reads a snapshot. Rejects (and leaves `out` unchanged): empty text,
/// malformed or too deep JSON, another format or a newer version, an entry
/// without a key or a session_id, duplicate keys, fields of the wrong type.
bool decode_idempotency(const std::string& text,
                        std::vector<idempotency_entry>& out, std::string& why,
                        uint64_t* journal_seq = nullptr);

/// Keys as a snapshot left them, with journal records applied in order;
/// result() lists them in the order they were first put.
using idempotency_replay =
  keyed_replay<idempotency_entry, &idempotency_entry::key>;
template <>
bool idempotency_replay::apply(const std::string& payload, std::string& why);

} // namespace vb
