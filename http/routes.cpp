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

} // namespace

router::router(std::vector<route_entry> table) : table_(std::move(table)) {
  patterns_.reserve(table_.size());
  for (auto& r : table_)
    patterns_.push_back(segments(r.pattern));
}

route_match router::match(std::string_view method,
                          std::string_view path) const {
  route_match result;
  // Every pattern is absolute: a path without its leading '/' is none.
  if (path.empty() || path.front() != '/')
    return result;
  auto segs = segments(path);
  std::vector<std::string> params;
  for (size_t i = 0; i < table_.size(); ++i) {
    auto& r = table_[i];
    if (!match_pattern(segs, patterns_[i], params))
      continue;
    if (method == r.method) {
      result.route = &r;
      result.index = static_cast<int>(i);
      result.params = std::move(params);
      result.allow.clear();
      return result;
    }
    // The path is known with another method: remember the methods for 405,
    // and look on (a parameter route of this method may still match).
    if (!result.allow.empty())
      result.allow += ", ";
    result.allow += r.method;
  }
  return result;
}

const router& api_router() {
  static const router r{route_table()};
  return r;
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
