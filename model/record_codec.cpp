#include "model/record_codec.hpp"

#include <nlohmann/json.hpp>

namespace vb {

std::string compact_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string
op_record(std::string_view op,
          std::initializer_list<std::pair<std::string_view, std::string_view>>
            fields) {
  size_t size = 16 + op.size();
  for (auto& [name, value] : fields)
    size += name.size() + value.size() + 4;
  std::string out;
  out.reserve(size);
  out += R"({"op":")";
  out += op;
  out += '"';
  for (auto& [name, value] : fields) {
    out += ",\"";
    out += name;
    out += "\":";
    out += value;
  }
  out += '}';
  return out;
}

} // namespace vb
