// How the journal codecs (model/journal_codec, model/idempotency_codec)
// write a record's text. Both forms below are on disk and in the fuzz
// corpora, so neither may change a byte:
//   - a record around JSON already rendered (a provider, a lobby, an
//     entry) is written by op_record, "op" first;
//   - a record of plain values is a JSON object dumped by compact_json,
//     its keys sorted ({"key":"k","op":"del"}).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json_fwd.hpp>

namespace vb {

/// Compact JSON text that never throws (invalid UTF-8 becomes U+FFFD).
std::string compact_json(const nlohmann::json& j);

/// {"op":"<op>","<name>":<value>,...}: the values are JSON texts, copied as
/// they are; op and the names are plain identifiers, written unescaped.
std::string
op_record(std::string_view op,
          std::initializer_list<std::pair<std::string_view, std::string_view>>
            fields);

} // namespace vb
