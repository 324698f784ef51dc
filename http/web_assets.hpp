// The lobby page's files (web/), embedded in the binary at build time by
// cmake/embed_web.cmake; no network and no files on disk are needed to
// serve them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace vb {

struct web_asset {
  std::string content_type;
  std::shared_ptr<const std::string> body;
};

/// The file served at `path` ("/index.html", "/app.js"), or null.
const web_asset* find_web_asset(std::string_view path);

} // namespace vb
