// Files embedded in the binary at build time (CMake writes assets.cpp from
// http/assets.cpp.in): the OpenAPI descriptions and the /docs page.
#pragma once

namespace vb::assets {

/// http/openapi_spec.json
extern const char* const openapi_spec;

/// http/docs.html
extern const char* const docs_html;

} // namespace vb::assets
