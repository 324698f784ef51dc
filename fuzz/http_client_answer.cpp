// Fuzz target http_client_answer: the bytes an HTTP provider sends back,
// read as the outbound client reads them (link/answer.hpp: the parser's
// limits, the error words), then interpreted as the dispatcher interprets
// a join's answer (actors/dispatcher.cpp: no answer or 5xx is unavailable,
// another non-2xx a rejection, a 2xx must carry a run_id:
// model/provider_protocol.hpp). A provider is another service: whatever it
// answers must not crash the server. docs/fuzzing.md.
//
// Input: byte 0: bit 0 the request was a HEAD; bits 1-7 the read size (how
// the bytes arrive: 1 to 128 bytes per read, or all at once when 0). The
// rest: the provider's bytes, then the connection closes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz/fuzz_util.hpp"
#include "link/answer.hpp"
#include "link/http_client.hpp"
#include "model/provider_protocol.hpp"
#include "model/validate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vb::fuzz::input in(data, size);
  auto flags = in.byte();
  bool head = flags & 1;
  std::size_t chunk = flags >> 1;
  auto bytes = in.rest();
  if (chunk == 0)
    chunk = bytes.size() + 1;

  bool reusable = false;
  auto r = vb::answer::read_answer(bytes, head, chunk, &reusable);
  // http_link.hpp: exactly one of two shapes.
  if (r.error.empty()) {
    VB_FUZZ_CHECK(r.answered());
    VB_FUZZ_CHECK(r.status >= 200 && r.status <= 599);
    VB_FUZZ_CHECK(r.body.size() <= vb::http_client::max_body_bytes);
    if (head)
      VB_FUZZ_CHECK(r.body.empty());
  } else {
    VB_FUZZ_CHECK(r.status == 0 && !r.answered() && !r.ok());
    VB_FUZZ_CHECK(!reusable);
    VB_FUZZ_CHECK(!r.timed_out); // nothing here has a deadline
  }
  // The same bytes in one read and byte by byte: TCP may split an answer
  // anywhere, and the client's verdict must not depend on where.
  auto whole = vb::answer::read_answer(bytes, head, bytes.size() + 1);
  // The error's words may differ (a bad start line cut short reads as
  // "connection closed"): both are no answer, which is what the caller acts on.
  if (whole.status != r.status || whole.body != r.body
      || whole.error.empty() != r.error.empty()) {
    std::fprintf(stderr,
                 "%zu bytes per read: status %d, error \"%s\", %zu body "
                 "bytes; in one read: status %d, error \"%s\", %zu\n",
                 chunk, r.status, r.error.c_str(), r.body.size(),
                 whole.status, whole.error.c_str(), whole.body.size());
    VB_FUZZ_CHECK(!"the answer depends on how its bytes arrive");
  }

  // The dispatcher: only a 2xx answer is read for its run_id.
  if (r.ok()) {
    std::string run_id;
    std::string why;
    if (vb::parse_join_answer(r.body, run_id, why)) {
      VB_FUZZ_CHECK(!run_id.empty() && run_id.size() <= vb::max_id_length);
      VB_FUZZ_CHECK(vb::printable(run_id));
    } else {
      VB_FUZZ_CHECK(!why.empty() && run_id.empty());
    }
  }
  return 0;
}
