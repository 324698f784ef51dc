// Entries of a state owner's hash map in the order they were added, for
// stable listings and snapshots.
#pragma once

#include <algorithm>
#include <vector>

namespace vb {

/// Pointers to the map's values (each with an `order` field), sorted by it.
template <class Map>
std::vector<const typename Map::mapped_type*> in_order(const Map& m) {
  std::vector<const typename Map::mapped_type*> result;
  result.reserve(m.size());
  for (auto& kvp : m)
    result.push_back(&kvp.second);
  std::sort(result.begin(), result.end(),
            [](auto x, auto y) { return x->order < y->order; });
  return result;
}

} // namespace vb
