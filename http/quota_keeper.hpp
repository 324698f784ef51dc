// Where the per-client quotas live while the server runs: one
// client_quotas (model/client_quotas.hpp) on a strand of its own, reached
// with net::post, as the per-address connection counts are (http/server.cpp).
// No lock, and no I/O thread waits: the verdict comes back as a call.
// Included by http/server.cpp only.
#pragma once

#include "http/api.hpp"
#include "model/client_quotas.hpp"

namespace boost {
namespace asio {
class io_context;
} // namespace asio
} // namespace boost

namespace vb {

/// The quota hook of the API (api_context::quotas), on a strand of `ioc`.
quota_hook make_quota_hook(boost::asio::io_context& ioc, quota_limits limits);

} // namespace vb
