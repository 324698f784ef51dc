// The records of the two journals (SPEC §3), and their replay onto the state
// a snapshot held. Each record is one JSON object; storage/journal frames it
// (length, CRC-32C, sequence number). docs/journal.md lists them.
//
//   bot_providers.journal
//     {"op":"put","provider":{...}}          registered (again), catalog change
//     {"op":"del","provider_id":"..."}       deregistered or evicted
//     {"op":"seen","last_seen":{"id":t,...}} heartbeats since the last one
//   lobbies.journal
//     {"op":"lobby","lobby":{id,name,private,created_at}}   created
//     {"op":"lobby","lobby":{...,"had_people":true}}        its first person
//     {"op":"join","lobby_id":"...","session":{...}}        a bot member
//     {"op":"leave","lobby_id":"...","session_id":"..."}    a bot left
//
// Every record is idempotent (a put replaces, a delete of nothing is
// nothing), so replaying a record the snapshot already holds changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/keyed_replay.hpp"
#include "model/lobby_sax.hpp"
#include "model/types.hpp"

namespace vb {

std::string provider_put_record(const std::string& provider_json);
std::string provider_del_record(const std::string& provider_id);
std::string provider_seen_record(
  const std::vector<std::pair<std::string, double>>& last_seen);

std::string lobby_record(const lobby& header);
std::string join_record(const std::string& lobby_id,
                        const std::string& session_json);
std::string leave_record(const std::string& lobby_id,
                         const std::string& session_id);

/// The JSON of a lobby without its members, as a lobbies snapshot holds it
/// before its sessions; `had_people` only when set.
std::string lobby_header_json(const lobby& header);

/// Providers as a snapshot left them, with journal records applied in
/// order; result() lists them in registration order.
using provider_replay = keyed_replay<provider, &provider::provider_id>;
template <>
bool provider_replay::apply(const std::string& payload, std::string& why);

/// Lobbies (with their bot members) as a snapshot left them, with journal
/// records applied in order.
class lobby_replay {
public:
  explicit lobby_replay(std::vector<lobby> base);
  /// Parses the records about to be applied, on two threads (each its own
  /// half): apply then finds them parsed. Optional; start-up uses it.
  void preparse(std::vector<const std::string*> payloads);
  bool apply(const std::string& payload, std::string& why);
  std::vector<lobby> result();

private:
  struct parsed {
    detail::lobby_record_doc doc;
    bool ok = false;
    std::string why;
  };
  bool apply_doc(detail::lobby_record_doc& r, std::string& why);
  std::vector<const std::string*> parsed_for_;
  std::vector<parsed> parsed_;
  size_t next_parsed_ = 0;

  struct item {
    lobby header; // without its sessions
    keyed_items<session, &session::session_id> members;
  };
  std::vector<item> items_;
  std::unordered_map<std::string, size_t> index_;
};

} // namespace vb
