// The fuzz targets of the storage code (journal.cpp, snapshot.cpp): their
// LLVMFuzzerInitialize turns spdlog off. The loaders log each file they cut
// or move aside: millions of lines otherwise. Include in one target only.
#pragma once

#include <spdlog/spdlog.h>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}
