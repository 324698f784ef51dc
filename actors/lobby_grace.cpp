// The empty-lobby grace (--empty-lobby-grace, docs/voice.md): a lobby that
// had people and has none left keeps its bot members for the grace, then
// they leave as a bot leave does (the run stopped, the leave journaled),
// with the reason empty_lobby. A bot run is the costly part of the system,
// and a bot talking to an empty room is money spent for no one.
#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/lobby_shared.hpp"
#include "actors/stats.hpp"
#include "model/journal_codec.hpp"

namespace vb {

namespace {

double seconds_of(caf::timespan d) {
  return std::chrono::duration<double>(d).count();
}

} // namespace

bool lobby_state::grace_due() const {
  return peers.empty_lobby_grace > caf::timespan{0} && value.had_people
         && people == 0 && value.sessions.size() > people;
}

void lobby_state::check_grace() {
  if (!grace_due()) {
    // A timer in flight finds another arming and changes nothing.
    grace_armed = 0;
    return;
  }
  // A bot joining meanwhile does not extend it; its leaves in flight are
  // its end.
  if (grace_armed != 0 || grace_leaving != 0)
    return;
  grace_armed = ++grace_generation;
  self->delayed_send(self, peers.empty_lobby_grace, atom::grace_v,
                     grace_armed);
  spdlog::info("lobby {}: no people left; its {} bot members leave in {:.0f} s "
               "unless a person joins",
               value.id, value.sessions.size(),
               seconds_of(peers.empty_lobby_grace));
}

void lobby_state::grace_expired(uint64_t generation) {
  if (generation != grace_armed)
    return;
  grace_armed = 0;
  if (!grace_due())
    return;
  if (!peers.duty->on_duty()) {
    // Cluster: the sweeper stops them; armed again in case it dies first.
    check_grace();
    return;
  }
  std::vector<std::string> leaving;
  for (auto& m : value.sessions)
    if (m->value.is_bot)
      leaving.push_back(m->value.session_id);
  spdlog::info("lobby {}: no people for {:.0f} s: its {} bot members leave",
               value.id, seconds_of(peers.empty_lobby_grace), leaving.size());
  grace_leaving += leaving.size();
  for (auto& sid : leaving)
    leave(
      sid,
      [this, sid](const caf::error& err) {
        --grace_leaving;
        if (!err && peers.stats)
          ++peers.stats->empty_lobby_stops;
        if (err)
          spdlog::warn("lobby {}: bot member {} of an empty lobby not ended: "
                       "{} (tried again after the grace)",
                       value.id, sid, to_string(err));
        // A failed leave, or a bot that joined meanwhile: a grace again.
        check_grace();
      },
      leave_reason::empty_lobby);
}

store_change lobby_state::had_people_change() const {
  auto header = to_lobby(value, members_view::none);
  header.had_people = true;
  store_change c{lobby_record(header),
                 {image_op{{}, value.id,
                           std::make_shared<const std::string>(
                             lobby_header_json(header))}}};
  // Cluster: never writes back a lobby removed elsewhere meanwhile.
  c.ops.front().existing = true;
  return c;
}

void lobby_state::remember_people() {
  if (people == 0 || value.had_people)
    return;
  value.had_people = true;
  write({had_people_change()}, [this](const caf::error& err) {
    if (err)
      spdlog::warn("lobby {}: that it had people is not on disk: {} (a "
                   "restart without them forgets it)",
                   value.id, to_string(err));
  });
}

} // namespace vb
