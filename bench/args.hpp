// The command lines of the bench tools (load.cpp, startup_data.cpp): options
// read in order, each `--name value`; a bad one ends the program by `usage`.
#pragma once

#include <cstdlib>
#include <string>

namespace bench {

class args {
public:
  /// `usage` prints why and exits.
  args(int argc, char** argv, void (*usage)(const std::string&))
    : argc_(argc), argv_(argv), usage_(usage) {}

  /// Moves to the next option; false after the last one.
  bool next() {
    if (++k_ >= argc_)
      return false;
    name_ = argv_[k_];
    return true;
  }

  /// The option's name ("--port").
  const std::string& name() const {
    return name_;
  }

  /// The option's value.
  std::string value() {
    if (k_ + 1 >= argc_)
      fail(name_ + " needs a value");
    return argv_[++k_];
  }

  /// The value as a number of at least `lo`.
  double number(double lo) {
    auto s = value();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (!end || *end || v < lo)
      fail(name_ + ": bad value '" + s + "'");
    return v;
  }

  /// The value as a count (decimal digits).
  size_t count() {
    auto s = value();
    char* end = nullptr;
    auto v = std::strtoull(s.c_str(), &end, 10);
    if (!end || *end || s.empty())
      fail(name_ + ": bad number '" + s + "'");
    return static_cast<size_t>(v);
  }

private:
  [[noreturn]] void fail(const std::string& why) {
    usage_(why);
    std::exit(2); // usage exits already
  }

  int argc_;
  char** argv_;
  void (*usage_)(const std::string&);
  int k_ = 0;
  std::string name_;
};

} // namespace bench
