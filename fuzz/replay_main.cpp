// A main() for the fuzz targets without libFuzzer: the normal build (g++)
// links each target with this file into fuzz_replay_<name>, and ctest runs
// it over fuzz/corpus/<name>, so the seeds and every crash found so far
// are replayed by the ordinary suite (docs/fuzzing.md).
//
// Arguments are files or directories (not recursive: a corpus is flat, as
// libFuzzer writes it). Every input runs once, in name order so that a
// failure is reproducible; the exit status is 0 unless an argument cannot
// be read. A crash is the target's own abort, as under libFuzzer.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Optional in a target: weak, so that a target without it links.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv)
  __attribute__((weak));

namespace fs = std::filesystem;

namespace {

bool read_file(const fs::path& p, std::string& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return false;
  out.assign(std::istreambuf_iterator<char>(in),
             std::istreambuf_iterator<char>());
  return !in.bad();
}

} // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  std::vector<fs::path> inputs;
  int status = 0;
  for (int i = 1; i < argc; ++i) {
    fs::path arg = argv[i];
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      std::vector<fs::path> found;
      for (auto& e : fs::directory_iterator(arg, ec))
        if (e.is_regular_file(ec))
          found.push_back(e.path());
      std::sort(found.begin(), found.end());
      inputs.insert(inputs.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(arg, ec)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "fuzz replay: %s: no such file or directory\n",
                   argv[i]);
      status = 1;
    }
  }
  std::string data;
  for (auto& p : inputs) {
    if (!read_file(p, data)) {
      std::fprintf(stderr, "fuzz replay: %s: cannot read\n", p.c_str());
      status = 1;
      continue;
    }
    // A heap copy of exactly the input's size, as libFuzzer passes it, so
    // that a sanitizer sees a read past the end; never null, even when empty.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[data.size()]);
    std::copy(data.begin(), data.end(), buf.get());
    LLVMFuzzerTestOneInput(buf.get(), data.size());
  }
  std::printf("fuzz replay: %zu inputs, %s\n", inputs.size(),
              status == 0 ? "ok" : "some unreadable");
  return status;
}
