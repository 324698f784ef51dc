#include "model/token_bucket.hpp"

#include <algorithm>

namespace vb {

token_bucket::token_bucket(double rate, double burst)
  : rate_(rate), burst_(burst), tokens_(burst) {
}

double token_bucket::level(time_point now) const {
  if (!refilled_)
    return burst_;
  // A clock that went back (it should not: steady) refills nothing.
  auto dt = std::max(0.0,
                     std::chrono::duration<double>(now - *refilled_).count());
  return std::min(burst_, tokens_ + dt * rate_);
}

std::optional<double> token_bucket::take(time_point now) {
  tokens_ = level(now);
  if (!refilled_ || now > *refilled_)
    refilled_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return std::nullopt;
  }
  return (1 - tokens_) / rate_;
}

bool token_bucket::full(time_point now) const {
  return level(now) >= burst_;
}

} // namespace vb
