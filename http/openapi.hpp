// GET /api/openapi.json and GET /docs: the OpenAPI 3 document of the routes,
// and a page that renders it. The document's paths come from route_table();
// what each operation takes and answers is described in one place,
// http/openapi_spec.json (embedded in the binary at build time). A route
// without a description, or a description without a route, is a mismatch
// that a unit test reports. No Beast, no CAF here.
#pragma once

#include <string>
#include <vector>

namespace vb {

/// The OpenAPI document (JSON text) of route_table(), served under
/// `base_path` (its only server URL).
std::string openapi_document(const std::string& base_path);

/// What disagrees between route_table() and http/openapi_spec.json: routes
/// without an operation, operations without a route, path parameters
/// without a description. Empty when both agree.
std::vector<std::string> openapi_mismatches();

/// The /docs page: HTML with an inline script that fetches
/// api/openapi.json (relative to the page) and renders it. No other asset.
const std::string& docs_page();

} // namespace vb
