#include "model/provider_protocol.hpp"

#include <nlohmann/json.hpp>

#include "model/validate.hpp"

namespace vb {

std::string join_call_body(std::string_view lobby_id,
                           std::string_view session_id, std::string_view nick,
                           std::string_view server_url,
                           std::string_view session_token) {
  nlohmann::json j{{"lobby_id", lobby_id},
                   {"session_id", session_id},
                   {"nick", nick},
                   {"server_url", server_url},
                   {"session_token", session_token}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool parse_join_answer(std::string_view body, std::string& run_id,
                       std::string& why) {
  if (json_depth(body) > max_json_depth) {
    why = "answer nested too deep";
    return false;
  }
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    why = "answer is not a JSON object";
    return false;
  }
  auto i = j.find("run_id");
  if (i == j.end() || !i->is_string() || i->get_ref<const std::string&>().empty()) {
    why = "answer has no run_id";
    return false;
  }
  auto& id = i->get_ref<const std::string&>();
  if (id.size() > max_id_length || !printable(id)) {
    why = "answer has an invalid run_id";
    return false;
  }
  run_id = id;
  return true;
}

} // namespace vb
