// A fresh temporary directory for a test, removed with its contents at the
// end. Apart from fixture.hpp so that the tests built without CAF use it too.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace vb::test {

struct temp_dir {
  std::string path;

  temp_dir() {
    char tmpl[] = "/tmp/vb-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }

  ~temp_dir() {
    namespace fs = std::filesystem;
    std::error_code ec;
    // A test may have left it read-only (a failed write's case).
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// The path of `name` inside it.
  std::string operator/(const std::string& name) const {
    return path + "/" + name;
  }
};

/// Every file under `dir`, one after the other: to check what a secret never
/// reaches.
inline std::string read_dir_text(const std::string& dir) {
  std::string all;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      all += text.str();
    }
  return all;
}

} // namespace vb::test
