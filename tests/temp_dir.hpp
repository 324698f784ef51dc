// A fresh temporary directory for a test, removed with its contents at the
// end. Apart from fixture.hpp so that the tests built without CAF use it too.
#pragma once

#include <cstdlib>
#include <string>

namespace vb::test {

struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/vb-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() {
    std::string cmd = "rm -rf '" + path + "'";
    [[maybe_unused]] auto rc = std::system(cmd.c_str());
  }
};

} // namespace vb::test
