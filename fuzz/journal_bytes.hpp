// Journal framing for the journal targets (docs/journal.md): random bytes
// almost never carry a valid CRC-32C, so without help a fuzzer would only
// ever see the "bad record" paths. fix_crcs() walks the records of a file
// image and writes the right CRC into each header it can frame, so that
// the payloads reach the replay code while lengths, seqs and batch bits
// stay the fuzzer's.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "storage/crc32c.hpp"
#include "storage/journal.hpp"

namespace vb::fuzz {

inline uint32_t get_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline void put_le32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

/// Recomputes the CRC of every record that fits in `file`, front to back;
/// stops at the first length that runs past the end.
inline void fix_crcs(std::string& file) {
  using vb::storage::journal_header_size;
  size_t off = 0;
  while (off + journal_header_size <= file.size()) {
    char* h = file.data() + off;
    uint32_t len = get_le32(h) & ~vb::storage::journal_batch_continues;
    if (len > file.size() - off - journal_header_size)
      return;
    uint32_t crc = vb::storage::crc32c(h, 4);
    crc = vb::storage::crc32c(h + 8, 8, crc);
    crc = vb::storage::crc32c(h + journal_header_size, len, crc);
    put_le32(h + 4, crc);
    off += journal_header_size + len;
  }
}

} // namespace vb::fuzz
