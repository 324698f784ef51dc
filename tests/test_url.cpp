// The one URL grammar (model/url.hpp), which validation checks a base_url
// with and the outbound HTTP client parses with.
#include <catch2/catch.hpp>

#include <string>

#include "model/url.hpp"

using vb::url_error;
using vb::url_parts;

namespace {

url_error error_of(const std::string& url) {
  url_parts u;
  return vb::parse_url(url, u);
}

} // namespace

TEST_CASE("url: a host alone gets the scheme's port and the path /",
          "[url]") {
  url_parts u;
  REQUIRE(vb::parse_url("http://example.com", u) == url_error::none);
  CHECK(u.scheme == "http");
  CHECK(u.host == "example.com");
  CHECK(u.port == "80");
  CHECK(u.target == "/");
  REQUIRE(vb::parse_url("HTTPS://h/x", u) == url_error::none);
  CHECK(u.scheme == "https");
  CHECK(u.port == "443");
  CHECK(u.target == "/x");
}

TEST_CASE("url: names, IPv4 and bracketed IPv6 hosts with ports and paths "
          "are accepted",
          "[url]") {
  // A URL, and the host, port and target it splits into.
  struct split {
    const char *url, *host, *port, *target;
  };
  for (auto [url, host, port, target] :
       {split{"http://Provider-1.local:8080/a/b", "Provider-1.local", "8080",
              "/a/b"},
        split{"http://10.0.0.7:1/", "10.0.0.7", "1", "/"},
        split{"http://[::1]:9000/bots", "::1", "9000", "/bots"},
        split{"http://[fe80::1:2]", "fe80::1:2", "80", "/"},
        split{"http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", "80", "/"}}) {
    CAPTURE(url);
    url_parts u;
    REQUIRE(vb::parse_url(url, u) == url_error::none);
    CHECK(u.host == host);
    CHECK(u.port == port);
    CHECK(u.target == target);
  }
  for (const char* good :
       {"http://voicebot:8788", "http://localhost:65535", "http://h_1.x-y./",
        "http://h/a@b/%41~!$&'()*+,;=:", "http://h//double//slashes//",
        "http://127.0.0.1", "http://255.255.255.255/", "http://1.2.3.4.example",
        "http://[2001:DB8::1]:443/p"}) {
    CAPTURE(good);
    CHECK(error_of(good) == url_error::none);
  }
}

TEST_CASE("url: user info is refused, with or without a password",
          "[url]") {
  for (const char* bad :
       {"http://user:pw@127.0.0.1:9000", "http://user@h/", "http://u:p@h/x",
        "http://@h/", "http://a@b@h/", "http://user@", "https://u@[::1]:1/",
        "http://h:80@evil/"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::user_info);
  }
  url_parts u;
  u.host = "untouched";
  CHECK(vb::parse_url("http://user:pw@h/", u) == url_error::user_info);
  CHECK(u.host == "untouched");
}

TEST_CASE("url: a missing or malformed host is refused", "[url]") {
  for (const char* bad :
       {"http://", "https:///path", "http://:8080", "http://:80/",
        "http://ho!st", "http://h%41/", "http://[::1", "http://[]/",
        "http://[zz]", "http://[zz::1]/", "http://[::1]x/",
        "http://[1.2.3.4]/", "http://::1/", "http://[::1%25eth0]/",
        "http://[1:2:3:4:5:6:7:8:9]/", "http://h\xc3\xa9/",
        "http://b\xc3\xbc" "cher.example/", "http://127.1/",
        "http://1.2.3.256/", "http://01.2.3.4/", "http://1.2.3.4./",
        "http://999/"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::bad_host);
  }
}

TEST_CASE("url: a port must be 1 to 65535 in digits", "[url]") {
  for (const char* bad :
       {"http://h:0/", "http://h:65536/", "http://h:99999", "http://h:123456/",
        "http://h:8a/", "http://h:8o", "http://h:-1/", "http://h:/",
        "http://h:", "http://[::1]:/", "http://[::1]:0/", "http://h:+80/"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::bad_port);
  }
  CHECK(error_of("http://h:00080/") == url_error::none);
}

TEST_CASE("url: spaces, control characters and non-ASCII paths are refused",
          "[url]") {
  for (const char* bad :
       {"http://exa mple.com", " http://x", "http://x ", "http://x\t",
        "http://h/a b", "http://h/\r\nX-Injected: 1", "http://h\t/",
        "http://h/\x7f", "http://x/\n", "http://x/\xc2\xa0",
        "http://x/\xc3\xa9"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::bad_format);
  }
}

TEST_CASE("url: only http and https, with a well-formed scheme", "[url]") {
  for (const char* bad : {"", "example.com", "//example.com", "://x", "h://x",
                          "1http://x", "http:/x", "http//h/", "http:h"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::bad_scheme);
  }
  for (const char* bad : {"ftp://example.com", "file:///etc/passwd",
                          "javascript://x", "ws://host", "httpx://h"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::scheme_not_permitted);
  }
}

TEST_CASE("url: a base URL has no query or fragment", "[url]") {
  for (const char* bad :
       {"http://h?x=1", "http://h/?", "https://bots.example.com/path?q=1#frag",
        "http://h/p#f", "http://h#", "http://[::1]:80?x"}) {
    CAPTURE(bad);
    CHECK(error_of(bad) == url_error::query_or_fragment);
  }
}

TEST_CASE("url: join_url appends a path and encode_path_segment escapes "
          "outside values",
          "[url]") {
  CHECK(vb::join_url("http://h:1", "/bots") == "http://h:1/bots");
  CHECK(vb::join_url("http://h:1/", "/bots") == "http://h:1/bots");
  CHECK(vb::join_url("http://h:1//", "/bots") == "http://h:1/bots");
  CHECK(vb::join_url("http://h:1/prefix", "/bots") == "http://h:1/prefix/bots");
  CHECK(vb::join_url("http://h:1/prefix/", "/bots/x/join")
        == "http://h:1/prefix/bots/x/join");
  CHECK(vb::join_url("http://h", "bots") == "http://h/bots");
  CHECK(vb::join_url("http://h/", "") == "http://h/");

  CHECK(vb::encode_path_segment("echo") == "echo");
  CHECK(vb::encode_path_segment("A-z_0.9~") == "A-z_0.9~");
  CHECK(vb::encode_path_segment("run 1/2?#%") == "run%201%2F2%3F%23%25");
  CHECK(vb::encode_path_segment("\xc3\xa9") == "%C3%A9");
  CHECK(vb::encode_path_segment("") == "");

  url_parts u;
  REQUIRE(vb::parse_url(
            vb::join_url("http://[::1]:8080/p/",
                         "/bots/runs/" + vb::encode_path_segment("a b/c?#")
                           + "/stop"),
            u)
          == url_error::none);
  CHECK(u.host == "::1");
  CHECK(u.target == "/p/bots/runs/a%20b%2Fc%3F%23/stop");
}

TEST_CASE("url: every accepted base URL stays in the grammar once a call's "
          "path is joined",
          "[url]") {
  // What validation accepts, the client can call: the dispatcher's three
  // paths joined to accepted base URLs parse again.
  for (const char* base :
       {"http://h", "http://h/", "http://h:1/p/", "https://[::1]:8443/x",
        "http://10.0.0.7//"}) {
    REQUIRE(vb::check_url(base) == url_error::none);
    for (std::string path :
         {std::string{"/bots"},
          "/bots/" + vb::encode_path_segment("my bot?") + "/join",
          "/bots/runs/" + vb::encode_path_segment("r/1#") + "/stop"}) {
      CAPTURE(base, path);
      CHECK(vb::check_url(vb::join_url(base, path)) == url_error::none);
    }
  }
}
