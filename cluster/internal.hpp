// Cluster mode's private parts (cluster/*.cpp only): the messages the
// cluster actors send themselves from the etcd client's thread, their typed
// interfaces, and the helpers for keys, values and reads they share.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "cluster/cluster.hpp"
#include "etcd/etcd_client.hpp"

#include "cluster/messages.hpp"

namespace vb::cluster_detail {

using json = nlohmann::json;
using std::chrono::milliseconds;

/// etcd's limit on the operations of one transaction (--max-txn-ops), less
/// room for the fence, and a byte budget under its 1.5 MiB request limit.
constexpr size_t max_txn_ops = 120;
constexpr size_t max_txn_bytes = 1024 * 1024;
/// A commit that etcd has not answered by then fails (503): within about
/// 3 s without quorum (design §4.4), where etcd itself would wait ~7 s.
constexpr milliseconds txn_timeout{3000};
constexpr milliseconds read_timeout{5000};
/// How long a join waits for another instance's join of the same name.
constexpr auto reserve_wait = std::chrono::seconds(15);
/// A pending reservation older than this is taken over (its join cannot
/// still be dispatching: every failover attempt and the commit are far
/// shorter; its instance lost the answer or could not give it back).
constexpr double stale_reservation_s = 60;

/// Percent-encodes every byte but [A-Za-z0-9._~:@-] (keys), and back.
void escape_into(std::string& out, const std::string& s);
bool unescape(std::string_view s, std::string& out);
int64_t steady_ns();
/// Reads every key under `prefix` at one revision (0: the latest, then the
/// first page's), a page at a time, on the client's thread.
void range_all(std::shared_ptr<etcd::etcd_client> client, std::string prefix,
               int64_t revision,
               std::function<void(etcd::etcd_error, int64_t,
                                  std::vector<etcd::key_value>)>
                 done);
std::string describe(const etcd::etcd_error& e);

/// Waits for a client call at start-up.
template <class R, class Call>
R wait_for(Call call) {
  auto p = std::make_shared<std::promise<R>>();
  auto f = p->get_future();
  call([p](R r) { p->set_value(std::move(r)); });
  return f.get();
}

std::string owner_prefix(const cluster_context& ctx, const std::string& owner);
/// The key of a join's name (store_claim): PREFIX joins/<lobby>/<bot>/<nick>.
std::string claim_key(const cluster_context& ctx, const std::string& lobby_id,
                      const std::string& bot, const std::string& nick);
/// A reservation's value while its join is dispatched (under the lease).
std::string reservation_value(const cluster_context& ctx,
                              const std::string& session_id);
/// Its value once the member is committed (no lease): the member's session.
std::string joined_value(const std::string& session_id,
                         const std::string& session);
/// The value an image op puts (the entry's snapshot JSON), or null for a
/// removal.
std::shared_ptr<const std::string> op_value(const image_op& op);

} // namespace vb::cluster_detail
