// Session tokens and the TURN credentials' primitives (model/secret.hpp),
// against the RFCs' vectors.
#include <catch2/catch.hpp>

#include <set>

#include "model/secret.hpp"

using namespace vb;

namespace {

std::string hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0xf];
  }
  return out;
}

} // namespace

TEST_CASE("secret: base64 and base64url follow RFC 4648", "[secret]") {
  CHECK(base64("") == "");
  CHECK(base64("f") == "Zg==");
  CHECK(base64("fo") == "Zm8=");
  CHECK(base64("foo") == "Zm9v");
  CHECK(base64("foobar") == "Zm9vYmFy");
  CHECK(base64("\xfb\xff") == "+/8=");
  CHECK(base64url("\xfb\xff") == "-_8");
  CHECK(base64url("foobar") == "Zm9vYmFy");
}

TEST_CASE("secret: HMAC-SHA1 follows RFC 2202", "[secret]") {
  CHECK(hex(hmac_sha1(std::string(20, '\x0b'), "Hi There"))
        == "b617318655057264e28bc0b6fb378c8ef146be00");
  CHECK(hex(hmac_sha1("Jefe", "what do ya want for nothing?"))
        == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
}

TEST_CASE("secret: tokens are long, URL-safe and new each time; only their "
          "hash is kept, and it matches only them", "[secret]") {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    auto t = new_token();
    CHECK(t.size() == 43); // 32 bytes, base64url without padding
    CHECK(t.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789-_")
          == std::string::npos);
    seen.insert(t);
  }
  CHECK(seen.size() == 100);
  CHECK(new_token(4).size() == 22); // never under 128 bits
  CHECK(token_hash("abc")
        == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto t = new_token();
  auto h = token_hash(t);
  CHECK(h.find(t) == std::string::npos);
  CHECK(token_matches(t, h));
  CHECK_FALSE(token_matches(t + "x", h));
  CHECK_FALSE(token_matches(new_token(), h));
  CHECK_FALSE(token_matches(t, ""));
  CHECK_FALSE(token_matches(t, "sha256:00"));
  CHECK_FALSE(token_matches("", h));
}
