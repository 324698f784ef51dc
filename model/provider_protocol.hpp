// The HTTP protocol of the original voicebot providers (SPEC §4), as text:
//   POST {base_url}/bots/{bot_name}/join   {lobby_id, session_id, nick, server_url}
//        → 2xx {status, run_id}
//   POST {base_url}/bots/runs/{run_id}/stop
//   GET  {base_url}/bots                   (a liveness probe)
#pragma once

#include <string>
#include <string_view>

namespace vb {

/// The body of a join call: {lobby_id, session_id, nick, server_url,
/// session_token} (SPEC §4).
std::string join_call_body(std::string_view lobby_id,
                           std::string_view session_id, std::string_view nick,
                           std::string_view server_url,
                           std::string_view session_token);

/// Reads the run_id of a provider's answer to a join call; false with a
/// reason when the answer is not a JSON object with a non-empty string
/// run_id.
bool parse_join_answer(std::string_view body, std::string& run_id,
                       std::string& why);

} // namespace vb
