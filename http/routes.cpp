#include "http/routes.hpp"

namespace vb {

namespace {

/// Splits "/a/b/c" into {"a","b","c"}; an empty path gives {}.
std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> result;
  size_t pos = 0;
  if (!path.empty() && path.front() == '/')
    pos = 1;
  while (pos <= path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string_view::npos)
      next = path.size();
    result.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return result;
}

bool is_param(std::string_view seg) {
  return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
}

/// Matches path segments against a pattern's; fills params on success.
bool match_pattern(const std::vector<std::string_view>& path,
                   const std::vector<std::string_view>& pat,
                   std::vector<std::string>& params) {
  if (pat.size() != path.size())
    return false;
  params.clear();
  for (size_t i = 0; i < pat.size(); ++i) {
    if (is_param(pat[i])) {
      std::string decoded;
      if (path[i].empty() || !percent_decode(path[i], decoded))
        return false;
      params.push_back(std::move(decoded));
    } else if (pat[i] != path[i]) {
      return false;
    }
  }
  return true;
}

/// The route table's patterns split once, in the table's order.
const std::vector<std::vector<std::string_view>>& pattern_segments();

} // namespace

const std::vector<route_entry>& route_table() {
  static const std::vector<route_entry> table{
    {"GET", "/api/health", route_id::health},
    {"GET", "/api/openapi.json", route_id::openapi},
    {"GET", "/docs", route_id::docs},
    {"GET", "/metrics", route_id::metrics},
    {"GET", "/api/lobby", route_id::lobby_list},
    {"POST", "/api/lobby", route_id::lobby_create},
    {"GET", "/api/lobby/{lobby_id}", route_id::lobby_get},
    {"POST", "/api/lobby/{lobby_id}/sessions", route_id::session_create},
    {"DELETE", "/api/lobby/{lobby_id}/sessions/{session_id}",
     route_id::session_delete},
    {"POST", "/api/bots/providers/register", route_id::provider_register},
    {"GET", "/api/bots/providers", route_id::provider_list},
    {"GET", "/api/bots/providers/{provider_id}", route_id::provider_get},
    {"POST", "/api/bots/providers/{provider_id}/heartbeat",
     route_id::provider_heartbeat},
    {"DELETE", "/api/bots/providers/{provider_id}", route_id::provider_delete},
    {"POST", "/api/bots/providers/{provider_id}/drain",
     route_id::provider_drain},
    {"GET", "/api/bots", route_id::bot_list},
    {"POST", "/api/bots/{bot_name}/join", route_id::bot_join},
    {"POST", "/api/bots/leave", route_id::bot_leave},
    {"GET", "/ws/lobby/{lobby_id}", route_id::lobby_events},
  };
  return table;
}

namespace {

const std::vector<std::vector<std::string_view>>& pattern_segments() {
  static const auto patterns = [] {
    std::vector<std::vector<std::string_view>> result;
    for (auto& r : route_table())
      result.push_back(segments(r.pattern));
    return result;
  }();
  return patterns;
}

} // namespace

route_match match_route(std::string_view method, std::string_view path) {
  route_match result;
  auto segs = segments(path);
  std::vector<std::string> params;
  auto& table = route_table();
  auto& patterns = pattern_segments();
  for (size_t i = 0; i < table.size(); ++i) {
    auto& r = table[i];
    if (!match_pattern(segs, patterns[i], params))
      continue;
    if (method == r.method) {
      result.id = r.id;
      result.index = static_cast<int>(i);
      result.params = std::move(params);
      result.allow.clear();
      return result;
    }
    // A literal route wins over a parameter route of another method only
    // when nothing matches the method; remember the methods for 405.
    if (!result.allow.empty())
      result.allow += ", ";
    result.allow += r.method;
    result.id = route_id::method_not_allowed;
  }
  return result;
}

bool percent_decode(std::string_view in, std::string& out,
                    std::string_view refused) {
  out.clear();
  out.reserve(in.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size())
      return false;
    auto hi = hex(in[i + 1]);
    auto lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0)
      return false;
    auto c = static_cast<char>(hi * 16 + lo);
    if (refused.find(c) != std::string_view::npos)
      return false;
    out += c;
    i += 2;
  }
  return true;
}

} // namespace vb
