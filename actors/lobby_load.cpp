// Loading lobbies from the data directory, and the images the actors keep
// of lobbies and members.
#include "actors/lobby.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/journal_store.hpp"
#include "actors/stats.hpp"
#include "model/journal_codec.hpp"
#include "model/snapshot_codec.hpp"

namespace vb {

std::vector<lobby_image> load_lobbies(const std::string& dir,
                                      journal_store_seed& seed,
                                      server_stats* stats) {
  auto loaded = load_values<lobby_replay>(dir, lobbies_file_name,
                                          decode_lobbies, seed, stats);
  seed.render = render_lobbies;
  size_t bots = 0;
  size_t entries = loaded.size();
  for (auto& l : loaded)
    entries += l.sessions.size();
  seed.image.reserve(entries);
  std::vector<lobby_image> result;
  result.reserve(loaded.size());
  for (auto& l : loaded) {
    seed.image.apply(image_op{
      {}, l.id, std::make_shared<const std::string>(lobby_header_json(l))});
    result.push_back(to_image(std::move(l)));
    for (auto& m : result.back().sessions) {
      ++bots;
      seed.image.apply(image_op{result.back().id, m->value.session_id, nullptr,
                                shared_session(m)});
    }
  }
  spdlog::info("loaded {} lobbies with {} bot members from {}/{}",
               result.size(), bots, dir, lobbies_file_name);
  return result;
}

std::shared_ptr<const session>
shared_session(const std::shared_ptr<const lobby_image::member>& m) {
  return std::shared_ptr<const session>(m, &m->value);
}

lobby to_lobby(const lobby_image& img, members_view view) {
  lobby result;
  result.id = img.id;
  result.name = img.name;
  result.is_private = img.is_private;
  result.created_at = img.created_at;
  result.had_people = img.had_people;
  if (view == members_view::none)
    return result;
  result.sessions.reserve(img.sessions.size());
  for (auto& m : img.sessions)
    if (view == members_view::all || m->value.is_bot)
      result.sessions.push_back(m->value);
  return result;
}

std::vector<lobby_image> to_images(std::vector<lobby> ls) {
  std::vector<lobby_image> result;
  result.reserve(ls.size());
  for (auto& l : ls)
    result.push_back(to_image(std::move(l)));
  return result;
}

lobby_image to_image(lobby value) {
  lobby_image result;
  result.id = std::move(value.id);
  result.name = std::move(value.name);
  result.is_private = value.is_private;
  result.created_at = value.created_at;
  result.had_people = value.had_people;
  result.sessions.reserve(value.sessions.size());
  for (auto& s : value.sessions)
    result.sessions.push_back(make_member(std::move(s)));
  return result;
}

std::shared_ptr<const lobby_image::member> make_member(session s) {
  return std::make_shared<const lobby_image::member>(
    lobby_image::member{std::move(s)});
}

} // namespace vb
