#include "link/http_client.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "link/answer.hpp"
#include "link/connection_pool.hpp"
#include "link/round_trip.hpp"
#include "model/call_once.hpp"
#include "model/log_text.hpp"
#include "model/url.hpp"

namespace vb {

namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

// -- one request ----------------------------------------------------------------

namespace {

constexpr const char* user_agent = "voicebot-server";

http_result client_stopped() {
  return answer::failure("client stopped");
}

void report_completion_threw(const char* what) {
  if (what)
    spdlog::error("http client: a completion callback threw: {}", what);
  else
    spdlog::error("http client: a completion callback threw");
}

/// The caller's callback, called exactly once: if its request was dropped
/// when the io_context shut down, with "client stopped".
struct completion : call_once<http_result> {
  explicit completion(http_client::callback done)
    : call_once(std::move(done), client_stopped, report_completion_threw) {
  }
};

/// The request to a provider: HTTP/1.1, kept alive, JSON both ways.
round_trip::request request_to(const url_parts& url, bhttp::verb method,
                               std::string body) {
  round_trip::request req;
  req.method(method);
  req.target(url.target);
  req.version(11);
  req.set(bhttp::field::host, round_trip::host_field(url.host, url.port, "80"));
  req.set(bhttp::field::user_agent, user_agent);
  req.set(bhttp::field::accept, "application/json");
  if (!body.empty())
    req.set(bhttp::field::content_type, "application/json");
  req.body() = std::move(body);
  req.keep_alive(true);
  req.prepare_payload();
  return req;
}

/// One request on its own strand: an idle connection to the endpoint if the
/// pool has one, else a new one; after an answer that allows it, the
/// connection goes back to the pool.
void send(std::shared_ptr<round_trip::connection_pool> pool, url_parts url,
          round_trip::request req,
          std::chrono::steady_clock::time_point deadline,
          net::strand<net::io_context::executor_type> ex, completion done) {
  auto key = url.host + " " + url.port;
  round_trip::peer to;
  to.host = std::move(url.host);
  to.port = std::move(url.port);
  pool->take(key, ex,
             [pool, key, to = std::move(to), req = std::move(req), deadline, ex,
              done = std::make_shared<completion>(std::move(done))](
               std::shared_ptr<round_trip::connection> kept) mutable {
               to.kept = std::move(kept);
               round_trip::start(
                 ex, std::move(to), std::move(req), answer::rules(), deadline,
                 [pool, key, done](round_trip::outcome o) {
                   if (o.kept)
                     pool->give(key, std::move(o.kept));
                   (*done)(answer::result_of(std::move(o)));
                 },
                 report_completion_threw);
             });
}

} // namespace

// -- the client -----------------------------------------------------------------

struct http_client::impl {
  net::io_context ioc;
  net::executor_work_guard<net::io_context::executor_type> work{
    ioc.get_executor()};
  std::vector<std::thread> threads;
  std::shared_ptr<round_trip::connection_pool> pool
    = std::make_shared<round_trip::connection_pool>(ioc);

  /// Calls `done` with `error` from an I/O thread, never inline.
  void post_failure(completion done, std::string error) {
    net::post(ioc, [done = std::move(done), error = std::move(error)]() mutable {
      done(answer::failure(std::move(error)));
    });
  }
};

http_client::http_client(unsigned threads) : impl_(std::make_unique<impl>()) {
  if (threads == 0)
    threads = 1;
  impl_->threads.reserve(threads);
  for (unsigned i = 0; i < threads; ++i)
    impl_->threads.emplace_back([ioc = &impl_->ioc] { ioc->run(); });
}

http_client::~http_client() {
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads)
    t.join();
  // Destroying the io_context (with impl_) destroys the operations it still
  // holds; the last one of each request drops its round trip (or its wait
  // for the pool), whose completion then reports "client stopped" on this
  // thread.
  impl_.reset();
}

void http_client::request(std::string method, std::string url,
                          std::string body, std::chrono::milliseconds timeout,
                          callback done) {
  completion c(std::move(done));
  url_parts parts;
  if (parse_url(url, parts) != url_error::none)
    return impl_->post_failure(std::move(c), "bad url: " + log_text(url));
  if (parts.scheme != "http")
    return impl_->post_failure(std::move(c),
                               "https providers are not supported");
  auto verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown)
    return impl_->post_failure(std::move(c),
                               "bad method: " + log_text(method));
  // The deadline starts now, so time queued behind other work counts too.
  // Clamped to [0, 24 h] so that no addition overflows.
  timeout = std::clamp(timeout, std::chrono::milliseconds{0},
                       std::chrono::milliseconds{std::chrono::hours{24}});
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto req = request_to(parts, verb, std::move(body));
  send(impl_->pool, std::move(parts), std::move(req), deadline,
       net::make_strand(impl_->ioc), std::move(c));
}

} // namespace vb
