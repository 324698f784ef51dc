// CRC-32C (Castagnoli): the checksum of journal records. Software tables
// (slicing by 8), no CPU-specific instructions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vb::storage {

/// CRC-32C of [data, data + size): polynomial 0x1EDC6F41 (reflected
/// 0x82F63B78), initial value and final xor 0xFFFFFFFF, as in iSCSI and
/// ext4. `crc` is the running value for chaining: crc32c(b, nb, crc32c(a, na))
/// equals the CRC of a followed by b; start with 0.
/// crc32c("123456789", 9) == 0xE3069283.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

} // namespace vb::storage
