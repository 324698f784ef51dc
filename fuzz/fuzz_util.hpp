// Helpers shared by the fuzz targets (fuzz/*.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

namespace vb::fuzz {

/// An invariant of a target. Not assert(): the build types of the project
/// define NDEBUG, and a broken invariant must stop the fuzzer (libFuzzer
/// saves the input as a crash) in every build.
#define VB_FUZZ_CHECK(cond)                                                    \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__,     \
                   __LINE__, #cond);                                           \
      std::abort();                                                            \
    }                                                                          \
  } while (false)

/// Reads the fuzz input front to back: selector bytes first, the rest as
/// the payload. Past the end every byte is 0, so that short inputs still
/// select something.
class input {
public:
  input(const uint8_t* data, size_t size)
    : data_(reinterpret_cast<const char*>(data)), size_(size) {
  }

  uint8_t byte() {
    return pos_ < size_ ? static_cast<uint8_t>(data_[pos_++]) : 0;
  }

  uint64_t u64() {
    uint64_t x = 0;
    for (int i = 0; i < 8; ++i)
      x |= static_cast<uint64_t>(byte()) << (8 * i);
    return x;
  }

  /// What is left.
  std::string_view rest() const {
    return pos_ < size_ ? std::string_view(data_ + pos_, size_ - pos_)
                        : std::string_view();
  }

private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

/// A directory of this process's own for targets that go through files
/// (several fuzzer jobs run at once). On tmpfs when there is one: the
/// storage code fsyncs, and a disk would make every input cost milliseconds.
/// Created on first use, removed at exit. Held by a pointer that is never
/// freed, so that the exit handler runs before nothing has destroyed it.
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    auto* d = new std::string(std::string(base) + "/vb-fuzz-"
                              + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::create_directories(*d, ec);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return d;
  }();
  return *dir;
}

/// Replaces the file `path` with `bytes` (or removes it when `bytes` is
/// null).
inline void put_file(const std::string& path, const std::string_view* bytes) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (!bytes)
    return;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  VB_FUZZ_CHECK(f != nullptr);
  if (!bytes->empty())
    VB_FUZZ_CHECK(std::fwrite(bytes->data(), 1, bytes->size(), f)
                  == bytes->size());
  VB_FUZZ_CHECK(std::fclose(f) == 0);
}

/// Removes everything in the scratch directory (left by the last input).
inline void clear_scratch() {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(scratch_dir(), ec))
    std::filesystem::remove_all(e.path(), ec);
}

} // namespace vb::fuzz
