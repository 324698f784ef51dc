// The client's life (endpoints, its I/O thread) and the header's helpers.
#include "etcd/etcd_client.hpp"

#include <utility>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "etcd/client_impl.hpp"
#include "link/round_trip.hpp"
#include "model/log_text.hpp"
#include "model/url.hpp"

namespace vb::etcd {

const char* to_string(errc x) {
  switch (x) {
    case errc::none:
      return "none";
    case errc::unavailable:
      return "unavailable";
    case errc::server:
      return "server";
    case errc::bad_answer:
      return "bad_answer";
    case errc::bad_request:
      return "bad_request";
    case errc::client_stopped:
      return "client_stopped";
    case errc::refused:
      return "refused";
  }
  return "?";
}

std::vector<std::string> split_endpoints(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto comma = list.find(',', start);
    if (comma == std::string::npos)
      comma = list.size();
    auto item = list.substr(start, comma - start);
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos)
      out.push_back(item.substr(b, e - b + 1));
    start = comma + 1;
  }
  return out;
}

reply client_stopped_reply() {
  reply r;
  r.error = {errc::client_stopped, 0, 0, "client stopped"};
  return r;
}

void report_callback_threw(const char* what) {
  if (what)
    spdlog::error("etcd client: a callback threw: {}", what);
  else
    spdlog::error("etcd client: a callback threw");
}

namespace {

/// The TLS context the https endpoints share, or null (`error` says why).
std::shared_ptr<boost::asio::ssl::context> tls_of(const etcd_options& o,
                                                  bool https,
                                                  std::string& error) {
  bool files = !o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty();
  if (!https) {
    if (files)
      error = "TLS files are given but no etcd endpoint is https://";
    return nullptr;
  }
  if (o.ca_file.empty()) {
    error = "https etcd endpoints need the CA that signed etcd's "
            "certificates (--etcd-ca)";
    return nullptr;
  }
  return round_trip::client_context(o.ca_file, o.cert_file, o.key_file, error);
}

} // namespace

etcd_client::etcd_client(etcd_options options)
  : impl_(std::make_shared<impl>()) {
  impl_->options = std::move(options);
  auto& o = impl_->options;
  if (o.endpoints.empty())
    impl_->config_error = "no etcd endpoints";
  std::vector<url_parts> urls;
  bool https = false;
  for (auto& text : o.endpoints) {
    url_parts parts;
    if (parse_url(text, parts) != url_error::none) {
      impl_->config_error = "bad etcd endpoint: " + log_text(text);
      break;
    }
    https = https || parts.scheme == "https";
    urls.push_back(std::move(parts));
  }
  std::shared_ptr<boost::asio::ssl::context> tls;
  if (impl_->config_error.empty())
    tls = tls_of(o, https, impl_->config_error);
  // Endpoints are resolved once, here (numeric hosts do not wait).
  tcp::resolver resolver(impl_->ioc);
  for (std::size_t i = 0; i < urls.size() && impl_->config_error.empty(); ++i) {
    auto& parts = urls[i];
    boost::system::error_code ec;
    auto addresses = resolver.resolve(parts.host, parts.port, ec);
    if (ec) {
      impl_->config_error
        = "cannot resolve " + o.endpoints[i] + ": " + ec.message();
      break;
    }
    round_trip::tls_target secure;
    if (parts.scheme == "https")
      secure = {tls, parts.host};
    impl_->endpoints.push_back({o.endpoints[i],
                                round_trip::host_field(parts.host, parts.port),
                                addresses, std::move(secure)});
  }
  if (!impl_->config_error.empty())
    spdlog::error("etcd client: {}", impl_->config_error);
  impl_->thread = std::thread([ioc = &impl_->ioc] { ioc->run(); });
}

std::string etcd_client::config_error() const {
  return impl_ ? impl_->config_error : std::string{};
}

etcd_client::~etcd_client() {
  if (!impl_)
    return; // a test double's (the protected constructor): nothing started
  // Watches and keepers end silently; unary calls report client_stopped.
  net::post(impl_->ioc, [i = impl_.get()] { i->stopping = true; });
  impl_->work.reset();
  impl_->ioc.stop();
  impl_->thread.join();
  impl_->stopping = true;
  impl_->watches.clear();
  impl_->keepers.clear();
  impl_.reset(); // the io_context drops what it holds: calls report now
}

} // namespace vb::etcd
