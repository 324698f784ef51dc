// What CAF 0.17's binary decoder does with a message that declares a long
// std::vector<char> (the builtin `@charbuf`, which any message may carry)
// but holds only a few bytes: it resizes the vector to the declared length,
// then finds the input too short. docs/fuzzing.md, "Findings in CAF".
//
//   g++ -std=c++17 -O2 bench/caf_charbuf.cpp -o /tmp/caf_charbuf -lcaf_core
//   /usr/bin/time -f '%M kB peak, %e s' /tmp/caf_charbuf 2147483647
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <caf/all.hpp>

int main(int argc, char** argv) {
  uint32_t declared = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1u << 30;
  caf::actor_system_config cfg;
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  // A message with a one-byte charbuf, encoded; then its length (the
  // varbyte 0x01 before the last byte) replaced by `declared`, the byte cut.
  std::vector<char> bytes;
  {
    caf::binary_serializer sink{sys, bytes};
    auto msg = caf::make_message(std::vector<char>{'Z'});
    if (auto err = sink(msg))
      return 1;
  }
  if (bytes.size() < 2 || bytes.back() != 'Z' || bytes[bytes.size() - 2] != 1)
    return 2;
  bytes.resize(bytes.size() - 2);
  for (uint32_t x = declared;; x >>= 7) {
    uint8_t low7 = x & 0x7F;
    if (x > 0x7F)
      low7 |= 0x80;
    bytes.push_back(static_cast<char>(low7));
    if (x <= 0x7F)
      break;
  }
  auto start = std::chrono::steady_clock::now();
  caf::message back;
  caf::binary_deserializer source{sys, bytes};
  auto err = source(back);
  auto ms = std::chrono::duration<double, std::milli>(
              std::chrono::steady_clock::now() - start).count();
  // CAF 0.17.6 also drops the element's error: the result is an empty
  // message and no error.
  std::printf("input %zu bytes, declared charbuf length %u: %s, %zu elements,"
              " after %.1f ms\n",
              bytes.size(), declared,
              err ? sys.render(err).c_str() : "no error", back.size(), ms);
  return 0;
}
