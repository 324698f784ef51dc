#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>

#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  // The code under test logs state changes; tests show them only on request.
  if (auto level = std::getenv("VB_TEST_LOG"))
    spdlog::set_level(spdlog::level::from_str(level));
  else
    spdlog::set_level(spdlog::level::off);
  // As in both programs (apps/stop_signals.hpp): a peer that went away is
  // an error on the write, not a signal that ends the process.
  std::signal(SIGPIPE, SIG_IGN);
  return Catch::Session().run(argc, argv);
}
