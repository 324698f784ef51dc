#include "http/catalog_cache.hpp"

#include <unordered_set>

#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "model/json.hpp"

namespace vb {

using json = nlohmann::json;

const rendered_catalog& rendered(const provider_catalog& c) {
  thread_local rendered_catalog cache;
  if (cache.version == c.version && cache.providers)
    return cache;
  json providers = json::array();
  json bots = json::array();
  json owners = json::object();
  std::unordered_set<std::string> owned_by_online;
  for (auto& p : c.providers) {
    providers.push_back(p);
    auto online = p.status == provider_status::online;
    for (auto& b : p.bots) {
      bots.push_back({{"name", b.name},
                      {"description", b.description},
                      {"provider_id", p.provider_id}});
      // A bot offered by several providers maps to the first online one.
      if (!owners.contains(b.name)
          || (online && owned_by_online.count(b.name) == 0)) {
        owners[b.name] = p.provider_id;
        if (online)
          owned_by_online.insert(b.name);
      }
    }
  }
  auto dump = [](const json& j) {
    return std::make_shared<const std::string>(
      j.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  cache.version = c.version;
  cache.providers = dump(json{{"providers", std::move(providers)}});
  cache.bots = dump(json{{"bots", std::move(bots)}, {"providers", std::move(owners)}});
  return cache;
}

} // namespace vb
