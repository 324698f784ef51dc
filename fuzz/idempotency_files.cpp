// Fuzz target idempotency_files: the durable form of Idempotency-Keys
// (model/idempotency_codec.hpp): bytes as the snapshot idempotency.json
// (decode_idempotency), or as the payloads of idempotency.journal records
// replayed onto the keys (idempotency_replay). Both are read at start-up.
// docs/fuzzing.md.
//
// Input: byte 0 bit 0: journal records (else the snapshot). Records are the
// rest split at newlines, each a payload as storage/journal would hand it
// over (the framing is the journal target's). The snapshot: the rest.
//
// Invariants: a decoded snapshot encodes to a text that decodes again to the
// same encoding; the replayed keys, encoded, decode again (what start-up
// rebuilt, the next compaction can write and read back).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.hpp"
#include "model/idempotency_codec.hpp"

namespace {

/// Encodes `es`, decodes it, and checks that the text is stable.
void check_round_trip(const std::vector<vb::idempotency_entry>& es) {
  auto text = vb::encode_idempotency(es, 7);
  std::vector<vb::idempotency_entry> back;
  std::string why;
  uint64_t seq = 0;
  VB_FUZZ_CHECK(vb::decode_idempotency(text, back, why, &seq));
  VB_FUZZ_CHECK(seq == 7);
  VB_FUZZ_CHECK(back.size() == es.size());
  VB_FUZZ_CHECK(vb::encode_idempotency(back, 7) == text);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vb::fuzz::input in(data, size);
  auto flags = in.byte();
  auto rest = in.rest();
  if (flags & 1) {
    vb::idempotency_replay replay({});
    size_t start = 0;
    while (start <= rest.size()) {
      auto end = rest.find('\n', start);
      if (end == std::string_view::npos)
        end = rest.size();
      std::string payload(rest.substr(start, end - start));
      std::string why;
      if (!replay.apply(payload, why))
        VB_FUZZ_CHECK(!why.empty());
      start = end + 1;
    }
    check_round_trip(replay.result());
    return 0;
  }
  std::vector<vb::idempotency_entry> out;
  std::string why;
  uint64_t seq = 0;
  if (vb::decode_idempotency(std::string(rest), out, why, &seq))
    check_round_trip(out);
  else
    VB_FUZZ_CHECK(!why.empty() && out.empty());
  return 0;
}
