// Values of model/types.hpp built in one call, for the tests (and the seeds
// of fuzz/caf_seeds.cpp): a bot member, a person, a lobby, a provider, an
// HTTP provider's registration.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model/types.hpp"

namespace vb::test {

/// A bot member: `nick` is the bot `bot_name`, running as `run_id` on
/// `provider_id`.
inline session bot_member(std::string session_id, std::string nick,
                          std::string bot_name, std::string provider_id,
                          std::string run_id, double joined_at = 0) {
  session s;
  s.session_id = std::move(session_id);
  s.nick = std::move(nick);
  s.is_bot = true;
  s.bot_name = std::move(bot_name);
  s.provider_id = std::move(provider_id);
  s.run_id = std::move(run_id);
  s.joined_at = joined_at;
  return s;
}

/// A person in a lobby: a member with no bot, provider or run.
inline session person_member(std::string session_id, std::string nick,
                             double joined_at = 0) {
  auto s = bot_member(std::move(session_id), std::move(nick), "", "", "",
                      joined_at);
  s.is_bot = false;
  return s;
}

/// A public lobby without members.
inline lobby make_lobby(std::string id, std::string name,
                        double created_at = 0) {
  return lobby{std::move(id), std::move(name), false, created_at, {}};
}

/// A provider with its identity, bots and times (no URL, no description).
inline provider make_provider(std::string provider_id, std::string name,
                              transport via, std::vector<bot_info> bots,
                              double registered_at, double last_seen,
                              provider_status status =
                                provider_status::online) {
  provider p;
  p.provider_id = std::move(provider_id);
  p.name = std::move(name);
  p.via = via;
  p.bots = std::move(bots);
  p.registered_at = registered_at;
  p.last_seen = last_seen;
  p.status = status;
  return p;
}

/// An HTTP provider's registration of the bot "echo", at a URL of its name.
inline provider_registration echo_registration(const std::string& name,
                                               const std::string& instance = {},
                                               double interval = 0) {
  provider_registration r;
  r.name = name;
  r.base_url = "http://127.0.0.1:9000/" + name;
  r.bots = {bot_info{"echo", ""}};
  r.instance_id = instance;
  r.heartbeat_interval = interval;
  return r;
}

} // namespace vb::test
