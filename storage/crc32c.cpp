// CRC-32C, slicing by 8: see crc32c.hpp.
#include "storage/crc32c.hpp"

namespace vb::storage {

namespace {

struct crc_tables {
  uint32_t t[8][256];
};

// t[0] is the classic byte table; t[k][i] is the CRC of byte i followed by k
// zero bytes, so eight table lookups advance the CRC by eight bytes.
constexpr crc_tables make_tables() {
  crc_tables x {};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1u) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    x.t[0][i] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t i = 0; i < 256; ++i)
      x.t[k][i] = (x.t[k - 1][i] >> 8) ^ x.t[0][x.t[k - 1][i] & 0xffu];
  return x;
}

constexpr crc_tables tables = make_tables();

// Little-endian load, whatever the host's byte order or the alignment.
inline uint32_t load_le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8
         | static_cast<uint32_t>(p[2]) << 16
         | static_cast<uint32_t>(p[3]) << 24;
}

} // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  const auto& t = tables.t;
  crc = ~crc;
  while (size >= 8) {
    uint32_t lo = crc ^ load_le32(p);
    uint32_t hi = load_le32(p + 4);
    crc = t[7][lo & 0xffu] ^ t[6][(lo >> 8) & 0xffu]
          ^ t[5][(lo >> 16) & 0xffu] ^ t[4][lo >> 24] ^ t[3][hi & 0xffu]
          ^ t[2][(hi >> 8) & 0xffu] ^ t[1][(hi >> 16) & 0xffu]
          ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size > 0) {
    crc = t[0][(crc ^ *p) & 0xffu] ^ (crc >> 8);
    ++p;
    --size;
  }
  return ~crc;
}

} // namespace vb::storage
