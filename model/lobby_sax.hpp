// A SAX reader of lobbies as the lobbies snapshot and journal hold them: it
// fills lobby and session structs while nlohmann's parser reads the text,
// without building a JSON value first (a start-up reads a hundred thousand
// members). Internal to model/; the codecs use it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/types.hpp"

namespace vb::detail {

/// What a lobbies snapshot holds, as read.
struct lobbies_doc {
  std::string format;
  bool has_format = false;
  bool has_version = false;
  int64_t version = 0;
  uint64_t journal_seq = 0;
  bool has_lobbies = false;
  std::vector<lobby> lobbies;
};

/// What one lobbies journal record holds, as read.
struct lobby_record_doc {
  std::string op;
  std::string lobby_id;
  std::string session_id;
  bool has_session = false;
  session member;
  bool has_lobby = false;
  lobby header;
};

/// Parse `text`; false with `why` on malformed JSON or a field of the wrong
/// type. Unknown keys are skipped.
bool read_lobbies_doc(const std::string& text, lobbies_doc& out,
                      std::string& why);
bool read_lobby_record(const std::string& text, lobby_record_doc& out,
                       std::string& why);

} // namespace vb::detail
