// Secrets the server hands out (SPEC §9: session tokens): made from the
// system's random source, kept only as hashes, compared in constant time.
// OpenSSL's libcrypto does the work; nothing here logs.
#pragma once

#include <string>
#include <string_view>

namespace vb {

/// A new secret: `bytes` random bytes (at least 16: 128 bits), base64url
/// without padding.
std::string new_token(std::size_t bytes = 32);

/// What the server keeps of a token: "sha256:" and its SHA-256 in lowercase
/// hex. Tokens are random, so no salt is needed to keep them unguessable.
std::string token_hash(std::string_view token);

/// Whether `token` hashes to `hash`, in time independent of where they
/// differ. An empty hash matches nothing.
bool token_matches(std::string_view token, std::string_view hash);

/// base64 (RFC 4648 §4, with padding) and base64url (§5, without).
std::string base64(std::string_view bytes);
std::string base64url(std::string_view bytes);

/// HMAC-SHA1 of `message` with `key` (coturn's REST credentials).
std::string hmac_sha1(std::string_view key, std::string_view message);

} // namespace vb
