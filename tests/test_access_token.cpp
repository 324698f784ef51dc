// Frontend access tokens (model/access_token.hpp): what libjwt lets through
// and what the server then refuses. Tokens are minted here as a deployer's
// backend would, with OpenSSL's HMAC and base64url (docs/security.md has the
// same in Python), so libjwt is checked against an independent signer.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "model/access_token.hpp"
#include "model/secret.hpp"

using namespace vb;
using json = nlohmann::json;

namespace {

const std::string secret = "0123456789abcdef0123456789abcdef-test";
constexpr double now = 1'700'000'000;

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out,
       &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

/// A token with this header and these claims, signed by `md` with `key`
/// (no signature when `md` is null).
std::string mint(const json& header, const json& claims,
                 const EVP_MD* md = EVP_sha256(),
                 std::string_view key = secret) {
  auto signing_input = base64url(header.dump()) + "." + base64url(claims.dump());
  auto sig = md ? base64url(hmac(md, key, signing_input)) : std::string{};
  return signing_input + "." + sig;
}

std::string hs256(const json& claims, std::string_view key = secret) {
  return mint({{"alg", "HS256"}, {"typ", "JWT"}}, claims, EVP_sha256(), key);
}

json claims(json extra = json::object()) {
  json c{{"sub", "user-1"}, {"exp", now + 300}};
  c.update(extra);
  return c;
}

access_check check(const std::string& token) {
  return access_verifier{secret}.verify(token, now);
}

} // namespace

TEST_CASE("access token: an HS256 token signed with the secret is taken with "
          "its claims", "[access]") {
  auto got = check(hs256(claims({{"lobby", "L1"},
                                 {"bots", {"echo", "greeter"}},
                                 {"create_lobby", true}})));
  REQUIRE(got);
  CHECK(got.claims.subject == "user-1");
  CHECK(got.claims.expires_at == now + 300);
  CHECK(got.claims.lobby == "L1");
  CHECK_FALSE(got.claims.any_lobby);
  CHECK(got.claims.bots == std::vector<std::string>{"echo", "greeter"});
  CHECK(got.claims.create_lobby);
  // A fractional exp is a NumericDate too (RFC 7519 §2).
  CHECK(check(hs256(claims({{"exp", now + 0.5}}))));
  // Without "typ" as well: it is optional.
  CHECK(check(mint({{"alg", "HS256"}}, claims())));
}

TEST_CASE("access token: claims scope it: which lobby (or any), which bots "
          "(or any), whether it may create lobbies", "[access]") {
  auto scoped = check(hs256(claims({{"lobby", "L1"}, {"bots", {"echo"}}})));
  REQUIRE(scoped);
  auto& c = scoped.claims;
  CHECK_FALSE(c.forbids_lobby("L1"));
  CHECK(c.forbids_lobby("L2"));
  CHECK_FALSE(c.forbids_join("L1", "echo"));
  CHECK(c.forbids_join("L1", "greeter"));
  CHECK(c.forbids_join("L2", "echo"));
  CHECK(c.forbids_create());
  CHECK(*c.forbids_create() == "This access token may not create lobbies");

  auto any = check(hs256(claims({{"lobby", "*"}, {"bots", "*"},
                                 {"create_lobby", true}})));
  REQUIRE(any);
  CHECK_FALSE(any.claims.forbids_lobby("whatever"));
  CHECK_FALSE(any.claims.forbids_join("L9", "anybot"));
  CHECK_FALSE(any.claims.forbids_create());

  // No scope claims: a valid token that allows no change.
  auto bare = check(hs256(claims()));
  REQUIRE(bare);
  CHECK(bare.claims.forbids_lobby("L1"));
  CHECK(bare.claims.forbids_join("L1", "echo"));
  CHECK(bare.claims.forbids_create());
  // A lobby without bots: people's sessions there, no bot joins.
  auto person = check(hs256(claims({{"lobby", "L1"}})));
  REQUIRE(person);
  CHECK_FALSE(person.claims.forbids_lobby("L1"));
  CHECK(person.claims.forbids_join("L1", "echo"));
}

TEST_CASE("access token: expired, not yet valid, or without exp: refused",
          "[access]") {
  auto expired = check(hs256(claims({{"exp", now - 1}})));
  CHECK(expired.error == access_error::expired);
  CHECK(to_string(expired.error) == std::string{"access_token_expired"});
  CHECK(status_of(expired.error) == 401);
  CHECK(check(hs256(claims({{"exp", now}}))).error == access_error::expired);
  auto no_exp = claims();
  no_exp.erase("exp");
  CHECK(check(hs256(no_exp)).error == access_error::invalid);
  CHECK(check(hs256(claims({{"exp", "tomorrow"}}))).error
        == access_error::invalid);
  CHECK(check(hs256(claims({{"nbf", now + 60}}))).error
        == access_error::invalid);
  CHECK(check(hs256(claims({{"nbf", now - 60}}))));
}

TEST_CASE("access token: a forged signature, another secret or a changed "
          "claim is refused", "[access]") {
  auto other = check(hs256(claims({{"create_lobby", true}}),
                           "another-secret-another-secret-xx"));
  CHECK(other.error == access_error::invalid);
  CHECK(status_of(other.error) == 401);
  // The claims changed after signing: the signature no longer matches.
  auto good = hs256(claims({{"create_lobby", false}}));
  auto dot1 = good.find('.');
  auto dot2 = good.find('.', dot1 + 1);
  auto tampered = good.substr(0, dot1 + 1)
                  + base64url(claims({{"create_lobby", true}}).dump())
                  + good.substr(dot2);
  CHECK(check(tampered).error == access_error::invalid);
  // A signature with one character changed.
  auto flipped = good;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  CHECK(check(flipped).error == access_error::invalid);
  // The signature cut off.
  CHECK(check(good.substr(0, dot2 + 1)).error == access_error::invalid);
}

TEST_CASE("access token: alg none and every algorithm but HS256 are refused, "
          "even when signed with the secret", "[access]") {
  // "none": no signature at all.
  CHECK(check(mint({{"alg", "none"}, {"typ", "JWT"}}, claims(), nullptr)).error
        == access_error::invalid);
  CHECK(check(mint({{"alg", "none"}}, claims(), nullptr)).error
        == access_error::invalid);
  // HS384 and HS512 with the right secret: a valid signature, of the wrong
  // algorithm.
  CHECK(check(mint({{"alg", "HS384"}, {"typ", "JWT"}}, claims(), EVP_sha384()))
          .error
        == access_error::invalid);
  CHECK(check(mint({{"alg", "HS512"}, {"typ", "JWT"}}, claims(), EVP_sha512()))
          .error
        == access_error::invalid);
  // RS256 with the secret as an HMAC key (the key-confusion attack), and
  // with junk for a signature.
  CHECK(check(mint({{"alg", "RS256"}, {"typ", "JWT"}}, claims(), EVP_sha256()))
          .error
        == access_error::invalid);
  CHECK(check(mint({{"alg", "ES256"}}, claims(), EVP_sha256())).error
        == access_error::invalid);
  // An unknown algorithm, and none at all.
  CHECK(check(mint({{"alg", "HS999"}}, claims())).error
        == access_error::invalid);
  CHECK(check(mint({{"typ", "JWT"}}, claims())).error == access_error::invalid);
}

TEST_CASE("access token: malformed tokens and claims are refused, an absent "
          "one is missing", "[access]") {
  CHECK(check("").error == access_error::missing);
  CHECK(status_of(access_error::missing) == 401);
  for (auto bad : {"x", "a.b", "a.b.c", "..", "...", "a..c", "not a token",
                   "eyJhbGciOiJIUzI1NiJ9.e30", "eyJhbGciOiJIUzI1NiJ9.%%%.abc"})
    CHECK(check(bad).error == access_error::invalid);
  CHECK(check(std::string(5000, 'a')).error == access_error::invalid);
  // A header or claims that are not JSON objects.
  CHECK(check(base64url("[1]") + "." + base64url(claims().dump()) + ".x").error
        == access_error::invalid);
  auto sig_of = [](const std::string& input) {
    return input + "." + base64url(hmac(EVP_sha256(), secret, input));
  };
  auto header = base64url(R"({"alg":"HS256","typ":"JWT"})");
  CHECK(check(sig_of(header + "." + base64url("[1,2]"))).error
        == access_error::invalid);
  CHECK(check(sig_of(header + "." + base64url("not json"))).error
        == access_error::invalid);
  // Claims of the wrong types.
  CHECK(check(hs256(claims({{"sub", 42}}))).error == access_error::invalid);
  CHECK(check(hs256(claims({{"sub", std::string(300, 's')}}))).error
        == access_error::invalid);
  CHECK(check(hs256(claims({{"lobby", 7}}))).error == access_error::invalid);
  CHECK(check(hs256(claims({{"lobby", ""}}))).error == access_error::invalid);
  CHECK(check(hs256(claims({{"bots", "echo"}}))).error == access_error::invalid);
  CHECK(check(hs256(claims({{"bots", {1, 2}}}))).error == access_error::invalid);
  CHECK(check(hs256(claims({{"create_lobby", "yes"}}))).error
        == access_error::invalid);
  // A typ that is not JWT (libjwt's rule).
  CHECK(check(mint({{"alg", "HS256"}, {"typ", "JOSE+JSON"}}, claims())).error
        == access_error::invalid);
}

TEST_CASE("access token: the bearer token of an Authorization header",
          "[access]") {
  CHECK(access_verifier::bearer("Bearer abc.def.ghi") == "abc.def.ghi");
  CHECK(access_verifier::bearer("bearer  abc ") == "abc");
  CHECK(access_verifier::bearer("BEARER abc") == "abc");
  CHECK(access_verifier::bearer("Basic dXNlcjpwdw==").empty());
  CHECK(access_verifier::bearer("Bearer").empty());
  CHECK(access_verifier::bearer("Bearer ").empty());
  CHECK(access_verifier::bearer("Bearerabc").empty());
  CHECK(access_verifier::bearer("").empty());
}

TEST_CASE("access token: a WebSocket's access_token query parameter is read, "
          "and never logged", "[access]") {
  CHECK(access_token_param("access_token=abc") == "abc");
  CHECK(access_token_param("x=1&access_token=a.b.c&y=2") == "a.b.c");
  CHECK(access_token_param("my_access_token=abc").empty());
  CHECK(access_token_param("").empty());
  CHECK(redact_access_token("/ws/lobby/L1?access_token=a.b.c")
        == "/ws/lobby/L1?access_token=REDACTED");
  CHECK(redact_access_token("/ws/lobby/L1?x=1&access_token=a.b.c&y=2")
        == "/ws/lobby/L1?x=1&access_token=REDACTED&y=2");
  CHECK(redact_access_token("/api/lobby?x=1") == "/api/lobby?x=1");
  CHECK(redact_access_token("/api/lobby") == "/api/lobby");
}
