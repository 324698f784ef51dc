#include "http/quota_keeper.hpp"

#include <chrono>
#include <memory>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

namespace vb {

namespace net = boost::asio;

namespace {

/// The buckets and the strand they are touched on, shared by every
/// request's closure (and kept alive by the ones still queued).
struct quota_keeper {
  net::strand<net::io_context::executor_type> strand;
  client_quotas quotas;
};

} // namespace

quota_hook make_quota_hook(net::io_context& ioc, quota_limits limits) {
  auto keeper = std::make_shared<quota_keeper>(
    quota_keeper{net::make_strand(ioc), client_quotas{limits}});
  return [keeper](quota q, std::string client, quota_verdict verdict) {
    net::post(keeper->strand, [keeper, q, client = std::move(client),
                               verdict = std::move(verdict)] {
      // The verdict runs here, on the keeper's strand: it answers (a post
      // to the connection's strand) or asks an actor, never waits.
      verdict(keeper->quotas.take(q, client, std::chrono::steady_clock::now()));
    });
  };
}

} // namespace vb
