#include "model/log_text.hpp"

namespace vb {

std::string log_text(std::string_view s) {
  constexpr std::size_t most = 200;
  std::string out(s.substr(0, most));
  for (auto& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      c = '?';
  }
  if (s.size() > most)
    out += "...";
  return out;
}

} // namespace vb
