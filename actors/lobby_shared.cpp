// actors/lobby_shared.hpp: what the lobby actors share.
#include "actors/lobby_shared.hpp"

#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

namespace {

/// One lobby of a lobbies snapshot from its parts (a header, members),
/// through the validated snapshot decoder; false (and `why`) unless it is
/// exactly one lobby, `id`, with as many members as given.
bool decode_lobby(const std::string& header,
                  std::vector<const std::string*> sessions,
                  const std::string& id, lobby& out, std::string& why) {
  auto n = sessions.size();
  std::vector<lobby> ls;
  if (!decode_lobbies(encode_lobby_parts({lobby_parts{&header,
                                                      std::move(sessions)}},
                                         0),
                      ls, why))
    return false;
  if (ls.size() != 1 || ls[0].id != id || ls[0].sessions.size() != n) {
    why = "not one lobby with the id of its key";
    return false;
  }
  out = std::move(ls[0]);
  return true;
}

} // namespace

caf::error as_store_error(caf::error err) {
  if (err == caf::sec::request_timeout)
    return make_error(ec::storage_failed, "the store did not answer");
  return err;
}

caf::error session_not_found(const std::shared_ptr<server_stats>& stats) {
  if (stats && stats->store_unavailable())
    return make_error(ec::storage_failed,
                      "cluster store: etcd is unavailable or this instance "
                      "holds no live lease (retry later)");
  return make_error(ec::not_found, "Session not found");
}

store_change join_change(const std::string& lobby_id,
                         const std::shared_ptr<const lobby_image::member>& m) {
  return store_change{
    join_record(lobby_id, session_json(m->value)),
    {image_op{lobby_id, m->value.session_id, nullptr, shared_session(m)}}};
}

store_change claimed_join_change(
  const std::string& lobby_id,
  const std::shared_ptr<const lobby_image::member>& m) {
  auto c = join_change(lobby_id, m);
  auto& s = m->value;
  c.claims.push_back(store_claim{lobby_id, s.bot_name, s.nick, s.session_id,
                                 std::make_shared<const std::string>(
                                   session_json(s))});
  return c;
}

store_change leave_change(const std::string& lobby_id,
                          const std::string& session_id) {
  return store_change{leave_record(lobby_id, session_id),
                      {image_op{lobby_id, session_id, nullptr}}};
}

store_batch update_change(const std::string& lobby_id,
                          const std::shared_ptr<const lobby_image::member>& now) {
  auto& sid = now->value.session_id;
  auto join = join_change(lobby_id, now);
  join.ops.front().existing = true;
  return {leave_change(lobby_id, sid), std::move(join)};
}

bool decode_header(const std::string& json, const std::string& id, lobby& out,
                   std::string& why) {
  if (!decode_lobby(json, {}, id, out, why))
    return false;
  out.sessions.clear();
  return true;
}

bool decode_member(const std::string& json, const std::string& lobby_id,
                   const std::string& session_id, session& out,
                   std::string& why) {
  lobby header;
  header.id = lobby_id;
  header.name = lobby_id;
  lobby l;
  if (!decode_lobby(lobby_header_json(header), {&json}, lobby_id, l, why))
    return false;
  if (!session_id.empty() && l.sessions[0].session_id != session_id) {
    why = "its session_id is not its key";
    return false;
  }
  out = std::move(l.sessions[0]);
  return true;
}

} // namespace vb
