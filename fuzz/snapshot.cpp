// Fuzz target snapshot: bytes as a snapshot file (bot_providers.json or
// lobbies.json), through the decoders of model/snapshot_codec.hpp and the
// loader of storage/snapshot_file.hpp. A snapshot is read at start-up from
// the data directory; a damaged or hostile file must be refused (and moved
// aside) without crashing the server (docs/fuzzing.md).
//
// Input: byte 0 selects; bit 0: providers (0) or lobbies (1); bit 1: also
// through snapshot_file::load as the newest generation, bit 2 with a valid
// previous generation beside it. The rest is the file's contents.
//
// Invariants: a decoded snapshot encodes to a text that decodes again to the
// same encoding (what the server writes, it can read back); the loader
// returns the newest file only when the decoder accepts it, and otherwise
// falls back to the previous generation.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.hpp"
#include "fuzz/quiet_logs.hpp"
#include "model/snapshot_codec.hpp"
#include "storage/snapshot_file.hpp"

namespace {

bool decode(bool lobbies, const std::string& text, std::string& encoded,
            std::string& why) {
  if (lobbies) {
    std::vector<vb::lobby> out;
    if (!vb::decode_lobbies(text, out, why))
      return false;
    encoded = vb::encode_lobbies(out);
  } else {
    std::vector<vb::provider> out;
    if (!vb::decode_providers(text, out, why))
      return false;
    encoded = vb::encode_providers(out);
  }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vb::fuzz::input in(data, size);
  auto flags = in.byte();
  bool lobbies = flags & 1;
  std::string text(in.rest());

  std::string encoded;
  std::string why;
  bool ok = decode(lobbies, text, encoded, why);
  if (ok) {
    std::string again;
    std::string why2;
    VB_FUZZ_CHECK(decode(lobbies, encoded, again, why2));
    VB_FUZZ_CHECK(again == encoded);
  } else {
    VB_FUZZ_CHECK(!why.empty());
  }

  if (flags & 2) {
    const auto& dir = vb::fuzz::scratch_dir();
    vb::fuzz::clear_scratch();
    std::string name = lobbies ? "lobbies.json" : "bot_providers.json";
    std::string_view newest(text);
    vb::fuzz::put_file(dir + "/" + name, &newest);
    // A previous generation the decoder accepts.
    std::string prev = lobbies ? vb::encode_lobbies({})
                               : vb::encode_providers({});
    bool with_prev = flags & 4;
    if (with_prev) {
      std::string_view p(prev);
      vb::fuzz::put_file(dir + "/" + name + ".prev", &p);
    }
    vb::storage::snapshot_file file(dir, name);
    auto r = file.load([&](const std::string& contents, std::string& w) {
      std::string e;
      return decode(lobbies, contents, e, w);
    });
    using vb::storage::load_source;
    if (ok && !text.empty()) {
      VB_FUZZ_CHECK(r.source == load_source::newest);
      VB_FUZZ_CHECK(r.contents == text);
    } else {
      VB_FUZZ_CHECK(r.source != load_source::newest);
      VB_FUZZ_CHECK(r.source == (with_prev ? load_source::previous
                                           : load_source::none));
      // The refused file is moved aside, never deleted.
      VB_FUZZ_CHECK(!r.quarantined.empty());
    }
  }
  return 0;
}
