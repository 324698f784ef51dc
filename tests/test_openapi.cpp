// The OpenAPI document against the router: the same routes, each fully
// described, and the error shapes of SPEC §2.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "http/openapi.hpp"
#include "http/routes.hpp"

using json = nlohmann::json;

namespace {

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string upper(std::string s) {
  for (auto& c : s)
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
  return s;
}

const std::set<std::string> http_methods{"get",     "put",  "post",
                                         "delete",  "options", "head",
                                         "patch",   "trace"};

/// "GET /api/health" for every operation of the document.
std::set<std::string> document_operations(const json& doc) {
  std::set<std::string> ops;
  for (auto& [path, item] : doc.at("paths").items())
    for (auto& [key, op] : item.items())
      if (http_methods.count(key))
        ops.insert(upper(key) + " " + path);
  return ops;
}

/// Follows a local "$ref".
const json& resolve(const json& doc, const json& node) {
  if (!node.contains("$ref"))
    return node;
  auto ref = node.at("$ref").get<std::string>();
  REQUIRE(ref.rfind("#/", 0) == 0);
  return resolve(doc, doc.at(json::json_pointer(ref.substr(1))));
}

} // namespace

TEST_CASE("openapi: the document's operations are exactly the router's "
          "routes", "[openapi]") {
  auto doc = json::parse(vb::openapi_document(""));
  std::set<std::string> routes;
  for (auto& r : vb::route_table())
    routes.insert(std::string{r.method} + " " + r.pattern);
  CHECK(document_operations(doc) == routes);
  // And every route has a description of its own (no placeholder).
  auto problems = vb::openapi_mismatches();
  for (auto& p : problems)
    UNSCOPED_INFO(p);
  CHECK(problems.empty());
}

TEST_CASE("openapi: every operation is described: id, summary, parameters, "
          "a success answer and the error shapes",
          "[openapi]") {
  auto doc = json::parse(vb::openapi_document(""));
  CHECK(doc.at("openapi").get<std::string>().rfind("3.", 0) == 0);
  CHECK(doc.at("info").at("version") == VB_VERSION);
  std::set<std::string> ids;
  for (auto& [path, item] : doc.at("paths").items()) {
    // Path parameters are declared once per path and match the pattern.
    std::set<std::string> declared;
    if (item.contains("parameters"))
      for (auto& p : item.at("parameters")) {
        auto& param = resolve(doc, p);
        CHECK(param.at("in") == "path");
        CHECK(param.at("required") == true);
        declared.insert(param.at("name").get<std::string>());
      }
    std::set<std::string> in_pattern;
    for (size_t pos = 0; (pos = path.find('{', pos)) != std::string::npos;) {
      auto end = path.find('}', pos);
      in_pattern.insert(path.substr(pos + 1, end - pos - 1));
      pos = end;
    }
    CHECK(declared == in_pattern);
    for (auto& [method, op] : item.items()) {
      if (!http_methods.count(method))
        continue;
      INFO(method << " " << path);
      CHECK_FALSE(op.at("summary").get<std::string>().empty());
      auto id = op.at("operationId").get<std::string>();
      CHECK(ids.insert(id).second); // unique
      auto& responses = op.at("responses");
      bool success = false;
      for (auto& [status, r] : responses.items()) {
        if (status[0] == '1' || status[0] == '2')
          success = true;
        auto& response = resolve(doc, r);
        CHECK(response.contains("description"));
        if (status[0] != '4' && status[0] != '5')
          continue;
        // Errors: {"detail": "..."} or, for 422, a list of {loc, msg, type}.
        auto& schema = resolve(
          doc, response.at("content").at("application/json").at("schema"));
        auto& detail = resolve(doc, schema.at("properties").at("detail"));
        if (status == "422") {
          CHECK(detail.at("type") == "array");
          auto& item_schema = resolve(doc, detail.at("items"));
          CHECK(item_schema.at("required")
                == json::array({"loc", "msg", "type"}));
        } else {
          CHECK(detail.at("type") == "string");
        }
      }
      CHECK(success);
      // Every request can be unreadable or too large.
      CHECK(responses.contains("400"));
      CHECK(responses.contains("413"));
      CHECK(responses.contains("431"));
      // Every route can be the wrong method of a path, an unmatched one, or
      // (behind a trusted proxy) one request too many for its client.
      CHECK(responses.contains("404"));
      CHECK(responses.contains("405"));
      CHECK(responses.contains("429"));
      // A body or a path parameter can be invalid.
      if (op.contains("requestBody") || !declared.empty())
        CHECK(responses.contains("422"));
    }
  }
}

TEST_CASE("openapi: the base path is the document's server", "[openapi]") {
  auto plain = json::parse(vb::openapi_document(""));
  CHECK(plain.at("servers").at(0).at("url") == "/");
  auto based = json::parse(vb::openapi_document("/ai-voicebot"));
  CHECK(based.at("servers").at(0).at("url") == "/ai-voicebot");
  // Paths stay relative to the server.
  CHECK(based.at("paths").contains("/api/health"));
}

TEST_CASE("openapi: the docs page is self-contained", "[openapi]") {
  auto& page = vb::docs_page();
  CHECK(page.find("<!DOCTYPE html>") == 0);
  CHECK(page.find("api/openapi.json") != std::string::npos);
  // No asset from elsewhere: no src= or href= to another origin.
  for (auto attr : {"src=\"http", "src='http", "href=\"http", "href='http",
                    "src=\"//", "href=\"//", "@import"})
    CHECK(page.find(attr) == std::string::npos);
  CHECK(lower(page).find("<script src") == std::string::npos);
}
