// etcd's gateway JSON apart from any I/O, so every part speaks it alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "etcd/etcd_client.hpp"

namespace vb::etcd {

using json = nlohmann::json;

// -- request bodies -----------------------------------------------------------------

json range_json(const range_request& r);
json put_json(const put_request& r);
json delete_json(const delete_request& r);
json txn_json(const txn_request& r);
json lease_grant_json(int64_t ttl_seconds);
/// The body of revoke and keepalive: the lease id alone.
json lease_id_json(int64_t id);
json lease_ttl_json(int64_t id, bool keys);
json compaction_json(int64_t revision);
/// A watch's create request; `start_revision` absent: from now.
json watch_create_json(const watch_request& r,
                       std::optional<int64_t> start_revision);

// -- answers ------------------------------------------------------------------------

/// An answer: an error, or the JSON object (unwrapped from "result").
struct reply {
  etcd_error error;
  json body;
};

/// Reads the gateway's answer: `{"error":"..","message":"..","code":N}`,
/// `{"error":{"grpc_code":N,"message":".."}}` (streams), `{"result":{..}}`
/// (the keepalive stream) or the result object itself.
reply interpret(unsigned status, const std::string& text);

range_result range_of(const json& j);
put_result put_of(const json& j);
delete_result delete_of(const json& j);
txn_result txn_of(const json& j);
lease_result lease_of(const json& j);
lease_ttl_result lease_ttl_of(const json& j);
status_result status_of(const json& j);
/// A compaction answers its header alone.
put_result compaction_of(const json& j);

/// One line of a watch stream, read.
struct watch_line {
  enum class kind : uint8_t {
    skip,      // blank, or no result: nothing to say
    reconnect, // an error, a cancel or not JSON: the stream must stop
    update,    // created, events, progress or compacted
  };
  kind what = kind::skip;
  std::string why; // reconnect: what went wrong
  watch_update update;
};

watch_line watch_line_of(const std::string& line);

} // namespace vb::etcd
