#include "http/openapi.hpp"

#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/assets.hpp"
#include "http/routes.hpp"

namespace vb {

using ojson = nlohmann::ordered_json;

namespace {

/// http/openapi_spec.json, parsed once. Its "operations" object maps
/// "METHOD /pattern" to an OpenAPI operation; "common_responses" are the
/// answers of the front end that any request can get (an unreadable request,
/// a body or header block past the limits), added to every operation that
/// does not list them itself; everything else is copied into the document.
const ojson& spec() {
  static const ojson parsed = ojson::parse(assets::openapi_spec);
  return parsed;
}

std::string operation_key(const route_entry& r) {
  return std::string{r.method} + " " + r.pattern;
}

std::string lower(std::string_view s) {
  std::string out;
  for (auto c : s)
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

/// The `{name}` segments of a pattern, in order.
std::vector<std::string> path_params(std::string_view pattern) {
  std::vector<std::string> names;
  size_t pos = 0;
  while ((pos = pattern.find('{', pos)) != std::string_view::npos) {
    auto end = pattern.find('}', pos);
    if (end == std::string_view::npos)
      break;
    names.emplace_back(pattern.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return names;
}

bool has_param_description(const std::string& name) {
  auto& s = spec();
  auto c = s.find("components");
  if (c == s.end())
    return false;
  auto p = c->find("parameters");
  return p != c->end() && p->contains(name);
}

} // namespace

std::string openapi_document(const std::string& base_path) {
  auto& s = spec();
  ojson doc = ojson::object();
  for (auto& [key, value] : s.items()) {
    if (key == "operations" || key == "common_responses"
        || key == "components")
      continue;
    doc[key] = value;
  }
  doc["info"]["version"] = VB_VERSION;
  doc["servers"] = ojson::array(
    {{{"url", base_path.empty() ? std::string{"/"} : base_path},
      {"description", "this server"}}});
  auto& ops = s.at("operations");
  auto& common = s.at("common_responses");
  ojson paths = ojson::object();
  for (auto& r : route_table()) {
    auto& item = paths[r.pattern];
    auto op = ops.find(operation_key(r));
    if (op != ops.end()) {
      auto& added = item[lower(r.method)] = *op;
      for (auto& [status, response] : common.items())
        if (!added["responses"].contains(status))
          added["responses"][status] = response;
    } else {
      // Listed all the same, so the document never hides a route; the unit
      // test reports the missing description.
      item[lower(r.method)] = ojson{
        {"summary", "Undocumented route"},
        {"operationId", "undocumented_" + lower(r.method) + "_"
                          + std::to_string(&r - route_table().data())},
        {"responses", {{"default", {{"description", "Not described yet"}}}}}};
    }
    auto params = path_params(r.pattern);
    if (!params.empty() && !item.contains("parameters")) {
      ojson list = ojson::array();
      for (auto& name : params)
        list.push_back({{"$ref", "#/components/parameters/" + name}});
      item["parameters"] = std::move(list);
    }
  }
  doc["paths"] = std::move(paths);
  doc["components"] = s.at("components");
  return doc.dump(1);
}

std::vector<std::string> openapi_mismatches() {
  std::vector<std::string> problems;
  auto& ops = spec().at("operations");
  std::set<std::string> routes;
  for (auto& r : route_table()) {
    auto key = operation_key(r);
    routes.insert(key);
    if (!ops.contains(key))
      problems.push_back(key + ": a route without a description in "
                               "http/openapi_spec.json");
    for (auto& name : path_params(r.pattern))
      if (!has_param_description(name))
        problems.push_back(key + ": path parameter '" + name
                           + "' has no components.parameters entry");
  }
  for (auto& [key, value] : ops.items())
    if (routes.count(key) == 0)
      problems.push_back(key + ": described in http/openapi_spec.json but "
                               "not in the route table");
  return problems;
}

const std::string& docs_page() {
  static const std::string page{assets::docs_html};
  return page;
}

} // namespace vb
