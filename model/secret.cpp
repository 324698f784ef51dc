#include "model/secret.hpp"

#include <array>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace vb {

namespace {

constexpr std::string_view hash_prefix = "sha256:";

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 0xf];
  }
  return out;
}

std::string encode(std::string_view bytes, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto at = [&](std::size_t k) {
    return static_cast<unsigned>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 3 <= bytes.size(); i += 3) {
    auto v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  auto rest = bytes.size() - i;
  if (rest == 1) {
    auto v = at(i) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad)
      out += "==";
  } else if (rest == 2) {
    auto v = (at(i) << 16) | (at(i + 1) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad)
      out += '=';
  }
  return out;
}

} // namespace

std::string base64(std::string_view bytes) {
  return encode(bytes,
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                true);
}

std::string base64url(std::string_view bytes) {
  return encode(bytes,
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                false);
}

std::string new_token(std::size_t bytes) {
  if (bytes < 16)
    bytes = 16;
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()),
                 static_cast<int>(raw.size()))
      != 1)
    throw std::runtime_error("no random bytes from the system");
  return base64url(raw);
}

std::string token_hash(std::string_view token) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (EVP_Digest(token.data(), token.size(), md.data(), &n, EVP_sha256(),
                 nullptr)
      != 1)
    throw std::runtime_error("SHA-256 failed");
  return std::string{hash_prefix} + hex(md.data(), n);
}

bool token_matches(std::string_view token, std::string_view hash) {
  if (hash.empty())
    return false;
  auto mine = token_hash(token);
  // Equal lengths always (a hash we made); a different one is no match,
  // and its length is not the secret.
  if (mine.size() != hash.size())
    return false;
  return CRYPTO_memcmp(mine.data(), hash.data(), mine.size()) == 0;
}

std::string hmac_sha1(std::string_view key, std::string_view message) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  if (!HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(message.data()),
            message.size(), md.data(), &n))
    throw std::runtime_error("HMAC-SHA1 failed");
  return std::string(reinterpret_cast<const char*>(md.data()), n);
}

} // namespace vb
