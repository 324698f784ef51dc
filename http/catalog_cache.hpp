// The list answers of the registry's catalog (GET /api/bots/providers,
// GET /api/bots), rendered once per catalog version and shared: a poll of
// an unchanged fleet costs no JSON work.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace vb {

struct provider_catalog;

/// What one thread rendered of the catalog at one version.
struct rendered_catalog {
  uint64_t version = 0;
  std::shared_ptr<const std::string> providers; // {"providers": [...]}
  std::shared_ptr<const std::string> bots; // {"bots": [...], "providers": {...}}
};

/// The renderings of `c`, from this thread's cache when its version is
/// the cached one (each CAF worker keeps its own: no lock, no sharing).
const rendered_catalog& rendered(const provider_catalog& c);

} // namespace vb
