#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  // The code under test logs state changes; tests show them only on request.
  if (auto level = std::getenv("VB_TEST_LOG"))
    spdlog::set_level(spdlog::level::from_str(level));
  else
    spdlog::set_level(spdlog::level::off);
  return Catch::Session().run(argc, argv);
}
