// String forms of the model's enums, as they appear in JSON and snapshots.
#include "model/types.hpp"

namespace vb {

const char* to_string(transport x) {
  switch (x) {
    case transport::http:
      return "http";
    case transport::caf:
      return "caf";
  }
  return "http";
}

const char* to_string(provider_status x) {
  switch (x) {
    case provider_status::online:
      return "online";
    case provider_status::suspect:
      return "suspect";
    case provider_status::unreachable:
      return "unreachable";
    case provider_status::draining:
      return "draining";
  }
  return "online";
}

bool from_string(const std::string& s, transport& x) {
  for (auto candidate : {transport::http, transport::caf}) {
    if (s == to_string(candidate)) {
      x = candidate;
      return true;
    }
  }
  return false;
}

bool from_string(const std::string& s, provider_status& x) {
  for (auto candidate : {provider_status::online, provider_status::suspect,
                         provider_status::unreachable,
                         provider_status::draining}) {
    if (s == to_string(candidate)) {
      x = candidate;
      return true;
    }
  }
  return false;
}

} // namespace vb
