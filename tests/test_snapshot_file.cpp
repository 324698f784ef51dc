// Tests of the durable snapshot file protocol (storage/snapshot_file.hpp):
// round trips, quarantine of corrupt generations, leftover temporary files,
// crash points (a forked child dies at each step of a write) and random
// kill -9 of a child writing in a loop.
#include <catch2/catch.hpp>

#include "storage/snapshot_file.hpp"
#include "tests/storage_files.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <regex>

#include <sys/stat.h>

using namespace vb::storage;
using namespace vb::test;

namespace {

namespace fs = std::filesystem;

const std::string file_name = "snap.json";

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> corrupt_files(const std::string& dir) {
  auto names = list(dir);
  std::vector<std::string> out;
  for (auto& name : names)
    if (name.rfind(file_name + ".corrupt-", 0) == 0)
      out.push_back(name);
  return out;
}

std::string base_name(const std::string& path) {
  return fs::path(path).filename().string();
}

const std::regex
  corrupt_name_re(R"(snap\.json\.corrupt-(\d{8}T\d{6}Z)(-\d+)?)");

// The UTC stamp in a quarantined file's name (empty if it does not match).
std::string stamp_of(const std::string& name) {
  std::smatch m;
  if (!std::regex_match(name, m, corrupt_name_re))
    return {};
  return m[1].str();
}

bool write_ok(snapshot_file& f, const std::string& contents) {
  std::string error;
  bool ok = f.write(contents, error);
  if (!ok)
    UNSCOPED_INFO("write failed: " << error);
  return ok;
}

// Accepts contents starting with "valid:".
const snapshot_check check_valid = [](const std::string& contents,
                                      std::string& why) {
  if (contents.rfind("valid:", 0) == 0)
    return true;
  why = "no valid: prefix";
  return false;
};

// Accepts exactly one of `accepted`.
snapshot_check check_exact(std::vector<std::string> accepted) {
  return [accepted](const std::string& contents, std::string& why) {
    for (const auto& a : accepted)
      if (contents == a)
        return true;
    why = "not one of the expected generations (size "
          + std::to_string(contents.size()) + ")";
    return false;
  };
}

// Generations with a sequence number and a length/checksum footer:
//   "gen <seq>\n" <body> "\nlen=<n> sum=<fnv1a hex> end\n"
// where n is the length of everything before the footer.
uint64_t fnv1a(const char* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

std::string make_gen(uint64_t seq, char fill, size_t body_size) {
  std::string s = "gen " + std::to_string(seq) + "\n";
  s.append(body_size, fill);
  auto sum = fnv1a(s.data(), s.size());
  char footer[96];
  std::snprintf(footer, sizeof(footer), "\nlen=%zu sum=%016llx end\n",
                s.size(), static_cast<unsigned long long>(sum));
  s += footer;
  return s;
}

// Parses and verifies a generation; returns its sequence number.
std::optional<uint64_t> parse_gen(const std::string& s, std::string& why) {
  const std::string end = " end\n";
  if (s.size() < end.size()
      || s.compare(s.size() - end.size(), end.size(), end) != 0) {
    why = "no footer end";
    return std::nullopt;
  }
  auto pos = s.rfind("\nlen=");
  if (pos == std::string::npos) {
    why = "no footer";
    return std::nullopt;
  }
  size_t len = 0;
  unsigned long long sum = 0;
  if (std::sscanf(s.c_str() + pos, "\nlen=%zu sum=%llx end\n", &len, &sum) != 2
      || len != pos) {
    why = "bad length";
    return std::nullopt;
  }
  if (fnv1a(s.data(), pos) != sum) {
    why = "bad checksum";
    return std::nullopt;
  }
  unsigned long long seq = 0;
  if (std::sscanf(s.c_str(), "gen %llu\n", &seq) != 1) {
    why = "bad header";
    return std::nullopt;
  }
  auto body_start = s.find('\n') + 1;
  char fill = seq % 2 == 0 ? 'a' : 'b';
  if (s.find_first_not_of(fill, body_start) != pos) {
    why = "bad body";
    return std::nullopt;
  }
  return seq;
}

const snapshot_check check_gen = [](const std::string& contents,
                                    std::string& why) {
  return parse_gen(contents, why).has_value();
};

uint64_t seq_of(const std::string& contents) {
  std::string why;
  auto seq = parse_gen(contents, why);
  REQUIRE(seq.has_value());
  return *seq;
}

// A snapshot file in a fresh directory.
struct snapshot_fixture : quiet_dir {
  snapshot_file f{tmp.path, file_name};

  // The next write works, and a load gives it back as the newest.
  void write_and_load(const std::string& contents) {
    REQUIRE(write_ok(f, contents));
    auto r = f.load(check_valid);
    CHECK(r.source == load_source::newest);
    CHECK(r.contents == contents);
    CHECK(r.quarantined.empty());
  }
};

// Two generations written: "valid:two" in F, "valid:one" in F.prev.
struct two_generations : snapshot_fixture {
  two_generations() {
    REQUIRE(write_ok(f, "valid:one"));
    REQUIRE(write_ok(f, "valid:two"));
  }
};

enum class crash_kind { exit0, sigkill };

// Forks a child that writes `contents` and dies at step `at`.
void crash_write_at(const std::string& dir, write_step at, crash_kind kind,
                    const std::string& contents) {
  pid_t pid = fork_child();
  if (pid == 0) {
    snapshot_file f(dir, file_name);
    f.on_step([at, kind](write_step s) {
      if (s != at)
        return;
      if (kind == crash_kind::sigkill)
        ::raise(SIGKILL);
      ::_exit(0);
    });
    std::string error;
    bool ok = f.write(contents, error);
    ::_exit(ok ? 10 : 11); // the step was never reached
  }
  if (kind == crash_kind::sigkill)
    return require_killed(pid);
  int status = wait_for(pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

const std::vector<write_step> all_steps = {
  write_step::tmp_opened,  write_step::tmp_partly_written,
  write_step::tmp_written, write_step::tmp_synced,
  write_step::prev_linked, write_step::prev_renamed,
  write_step::renamed,     write_step::dir_synced,
};

bool is_prev_step(write_step s) {
  return s == write_step::prev_linked || s == write_step::prev_renamed;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

} // namespace

// --- round trips ---------------------------------------------------------

TEST_CASE_METHOD(snapshot_fixture, "snapshot file: write then load round trip",
                 "[storage]") {
  CHECK(f.path() == tmp / file_name);
  CHECK(f.dir() == tmp.path);
  REQUIRE(write_ok(f, "valid:one"));
  CHECK(slurp(tmp / file_name) == std::string("valid:one"));
  CHECK_FALSE(exists(tmp / (file_name + ".prev")));
  CHECK(list(tmp.path) == std::vector<std::string>{file_name});

  snapshot_file g(tmp.path, file_name);
  auto r = g.load(check_valid);
  CHECK(r.source == load_source::newest);
  CHECK(r.contents == "valid:one");
  CHECK(r.quarantined.empty());
  CHECK(r.removed.empty());
}

TEST_CASE_METHOD(two_generations, "snapshot file: second write keeps the "
                 "first as F.prev", "[storage]") {
  CHECK(slurp(tmp / file_name) == std::string("valid:two"));
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:one"));
  write_and_load("valid:three");
  CHECK(slurp(tmp / file_name) == std::string("valid:three"));
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:two"));
  CHECK(list(tmp.path)
        == std::vector<std::string>{file_name, file_name + ".prev"});
}

TEST_CASE_METHOD(snapshot_fixture, "snapshot file: the hook sees every step "
                 "in order", "[storage]") {
  std::vector<write_step> seen;
  f.on_step([&](write_step s) { seen.push_back(s); });
  REQUIRE(write_ok(f, "valid:one"));
  CHECK(seen
        == std::vector<write_step>{
          write_step::tmp_opened, write_step::tmp_partly_written,
          write_step::tmp_written, write_step::tmp_synced,
          write_step::renamed, write_step::dir_synced});
  seen.clear();
  REQUIRE(write_ok(f, "valid:two"));
  CHECK(seen == all_steps);
  CHECK(std::string(to_string(write_step::tmp_partly_written))
        == "tmp_partly_written");
  CHECK(std::string(to_string(write_step::dir_synced)) == "dir_synced");
}

TEST_CASE_METHOD(snapshot_fixture, "snapshot file: load of an empty directory "
                 "gives none", "[storage]") {
  auto r = f.load(check_valid);
  CHECK(r.source == load_source::none);
  CHECK(r.contents.empty());
  CHECK(r.quarantined.empty());
  CHECK(r.removed.empty());
  CHECK(list(tmp.path).empty());
}

TEST_CASE_METHOD(quiet_dir, "snapshot file: the directory is created if "
                 "missing", "[storage]") {
  SECTION("by load") {
    auto dir = tmp / "a/b/c";
    snapshot_file f(dir, file_name);
    auto r = f.load(check_valid);
    CHECK(r.source == load_source::none);
    CHECK(fs::is_directory(dir));
  }
  SECTION("by write") {
    auto dir = tmp / "x/y/z/";
    snapshot_file f(dir, file_name);
    REQUIRE(write_ok(f, "valid:one"));
    CHECK(slurp(tmp / ("x/y/z/" + file_name)) == std::string("valid:one"));
    CHECK(f.load(check_valid).contents == "valid:one");
  }
}

// --- quarantine ----------------------------------------------------------

TEST_CASE_METHOD(two_generations, "snapshot file: a corrupt newest is moved "
                 "aside and the previous generation loaded", "[storage]") {
  const std::string garbage("{\"garbage\0\xff\n", 13);
  put(tmp / file_name, garbage);

  log_capture log;
  auto before = utc_stamp(std::time(nullptr));
  auto r = f.load(check_valid);
  auto after = utc_stamp(std::time(nullptr));
  CHECK(r.source == load_source::previous);
  CHECK(r.contents == "valid:one");
  CHECK(r.removed.empty());
  REQUIRE(r.quarantined.size() == 1);
  const auto& moved = r.quarantined[0];
  CHECK(fs::path(moved).parent_path() == fs::path(tmp.path));
  auto stamp = stamp_of(base_name(moved));
  REQUIRE_FALSE(stamp.empty());
  CHECK(before <= stamp);
  CHECK(stamp <= after);
  CHECK(slurp(moved) == garbage); // byte for byte
  CHECK_FALSE(exists(tmp / file_name));
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:one"));

  // One clear warning: the file, the reason, where it went.
  auto text = log.text();
  INFO(text);
  auto line_start = text.find("warning ");
  REQUIRE(line_start != std::string::npos);
  auto line = text.substr(line_start, text.find('\n', line_start) - line_start);
  CHECK(line.find(tmp / file_name) != std::string::npos);
  CHECK(line.find("no valid: prefix") != std::string::npos);
  CHECK(line.find(moved) != std::string::npos);

  // The next write works (no F: no prev step) and keeps F.prev.
  write_and_load("valid:three");
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:one"));
  REQUIRE(write_ok(f, "valid:four"));
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:three"));
  CHECK(slurp(moved) == garbage);
}

TEST_CASE_METHOD(two_generations, "snapshot file: an empty newest is moved "
                 "aside", "[storage]") {
  put(tmp / file_name, "");

  bool check_called_on_empty = false;
  log_capture log;
  auto r = f.load([&](const std::string& c, std::string& why) {
    if (c.empty())
      check_called_on_empty = true;
    return check_valid(c, why);
  });
  CHECK_FALSE(check_called_on_empty);
  CHECK(r.source == load_source::previous);
  CHECK(r.contents == "valid:one");
  REQUIRE(r.quarantined.size() == 1);
  CHECK(slurp(r.quarantined[0]) == std::string());
  CHECK(corrupt_files(tmp.path).size() == 1);
  CHECK(log.text().find("empty") != std::string::npos);
}

TEST_CASE_METHOD(snapshot_fixture, "snapshot file: a truncated newest is "
                 "moved aside", "[storage]") {
  auto one = make_gen(1, 'b', 200000);
  auto two = make_gen(2, 'a', 300000);
  REQUIRE(write_ok(f, one));
  REQUIRE(write_ok(f, two));
  REQUIRE(::truncate((tmp / file_name).c_str(), 150001) == 0);
  auto truncated = two.substr(0, 150001);
  REQUIRE(slurp(tmp / file_name) == truncated);

  auto r = f.load(check_gen);
  CHECK(r.source == load_source::previous);
  CHECK(r.contents == one);
  REQUIRE(r.quarantined.size() == 1);
  CHECK(slurp(r.quarantined[0]) == truncated);
}

TEST_CASE_METHOD(two_generations, "snapshot file: an unreadable newest (a "
                 "directory) is moved aside", "[storage]") {
  REQUIRE(::unlink((tmp / file_name).c_str()) == 0);
  REQUIRE(::mkdir((tmp / file_name).c_str(), 0755) == 0);
  put(tmp / (file_name + "/inside"), "kept");

  log_capture log;
  auto r = f.load(check_valid);
  CHECK(r.source == load_source::previous);
  CHECK(r.contents == "valid:one");
  REQUIRE(r.quarantined.size() == 1);
  CHECK(slurp(r.quarantined[0] + "/inside") == std::string("kept"));
  CHECK(log.text().find("unreadable") != std::string::npos);
  REQUIRE(write_ok(f, "valid:three"));
  CHECK(f.load(check_valid).contents == "valid:three");
}

TEST_CASE_METHOD(two_generations, "snapshot file: corruptions in the same "
                 "second get distinct names", "[storage]") {
  // Decoys holding the plain names of this second and the next few: every
  // quarantine below collides with one and must take a -N suffix.
  auto now = std::time(nullptr);
  std::vector<std::string> decoys;
  for (int k = 0; k < 5; ++k) {
    auto name = tmp / (file_name + ".corrupt-" + utc_stamp(now + k));
    put(name, "decoy " + std::to_string(k));
    decoys.push_back(name);
  }
  // And the first suffix of this second too.
  put(decoys[0] + "-1", "decoy -1");

  put(tmp / file_name, "garbage 1");
  auto r1 = f.load(check_valid);
  REQUIRE(r1.quarantined.size() == 1);
  CHECK(r1.source == load_source::previous);

  // Make F corrupt again (F is missing now, so write twice).
  REQUIRE(write_ok(f, "valid:three"));
  put(tmp / file_name, "garbage 2");
  auto r2 = f.load(check_valid);
  REQUIRE(r2.quarantined.size() == 1);
  CHECK(r2.source == load_source::previous);
  CHECK(r2.contents == "valid:one");

  const auto& q1 = r1.quarantined[0];
  const auto& q2 = r2.quarantined[0];
  CHECK(q1 != q2);
  CHECK(std::regex_search(q1, std::regex(R"(Z-\d+$)")));
  CHECK(std::regex_search(q2, std::regex(R"(Z-\d+$)")));
  CHECK(slurp(q1) == std::string("garbage 1"));
  CHECK(slurp(q2) == std::string("garbage 2"));
  for (size_t k = 0; k < decoys.size(); ++k)
    CHECK(slurp(decoys[k]) == "decoy " + std::to_string(k));
  CHECK(slurp(decoys[0] + "-1") == std::string("decoy -1"));
  CHECK(corrupt_files(tmp.path).size() == decoys.size() + 1 + 2);
  if (stamp_of(base_name(q1)) == stamp_of(base_name(q2))) {
    CHECK(stamp_of(base_name(q1)) == utc_stamp(now));
    CHECK(q1 == decoys[0] + "-2");
    CHECK(q2 == decoys[0] + "-3");
  }
}

TEST_CASE_METHOD(two_generations, "snapshot file: corrupt newest and corrupt "
                 "previous are both moved aside", "[storage]") {
  put(tmp / file_name, "bad newest");
  put(tmp / (file_name + ".prev"), "bad previous");

  log_capture log;
  auto r = f.load(check_valid);
  CHECK(r.source == load_source::none);
  CHECK(r.contents.empty());
  REQUIRE(r.quarantined.size() == 2);
  CHECK(r.quarantined[0] != r.quarantined[1]);
  CHECK(slurp(r.quarantined[0]) == std::string("bad newest"));
  CHECK(slurp(r.quarantined[1]) == std::string("bad previous"));
  CHECK_FALSE(exists(tmp / file_name));
  CHECK_FALSE(exists(tmp / (file_name + ".prev")));
  CHECK(corrupt_files(tmp.path).size() == 2);
  auto text = log.text();
  CHECK(text.find(r.quarantined[0]) != std::string::npos);
  CHECK(text.find(r.quarantined[1]) != std::string::npos);

  // Starting without it: the next write and load work.
  write_and_load("valid:three");
}

TEST_CASE_METHOD(two_generations, "snapshot file: a missing newest with a "
                 "valid previous loads the previous", "[storage]") {
  REQUIRE(::unlink((tmp / file_name).c_str()) == 0);

  auto r = f.load(check_valid);
  CHECK(r.source == load_source::previous);
  CHECK(r.contents == "valid:one");
  CHECK(r.quarantined.empty());
  CHECK(r.removed.empty());

  write_and_load("valid:three");
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:one"));
}

TEST_CASE_METHOD(two_generations, "snapshot file: a valid newest is loaded "
                 "without looking at the previous", "[storage]") {
  put(tmp / (file_name + ".prev"), "bad previous");
  auto r = f.load(check_valid);
  CHECK(r.source == load_source::newest);
  CHECK(r.contents == "valid:two");
  CHECK(r.quarantined.empty());
  // The next write replaces the bad previous generation.
  REQUIRE(write_ok(f, "valid:three"));
  CHECK(slurp(tmp / (file_name + ".prev")) == std::string("valid:two"));
}

// --- leftovers -----------------------------------------------------------

TEST_CASE_METHOD(snapshot_fixture, "snapshot file: leftover temporary files "
                 "are removed at load", "[storage]") {
  SECTION("with a valid newest") {
    REQUIRE(write_ok(f, "valid:one"));
    put(tmp / (file_name + ".tmp"), "valid:half writ");
    put(tmp / (file_name + ".prev.tmp"), "valid:one");

    log_capture log;
    auto r = f.load(check_valid);
    CHECK(r.source == load_source::newest);
    CHECK(r.contents == "valid:one");
    CHECK(r.removed
          == std::vector<std::string>{tmp / (file_name + ".tmp"),
                                      tmp / (file_name + ".prev.tmp")});
    CHECK(r.quarantined.empty());
    CHECK(list(tmp.path) == std::vector<std::string>{file_name});
    auto text = log.text();
    CHECK(text.find("info ") != std::string::npos);
    CHECK(text.find(tmp / (file_name + ".tmp")) != std::string::npos);
    CHECK(text.find(tmp / (file_name + ".prev.tmp")) != std::string::npos);
  }
  SECTION("with nothing else") {
    put(tmp / (file_name + ".tmp"), "valid:never renamed");
    auto r = f.load(check_valid);
    CHECK(r.source == load_source::none);
    CHECK(r.removed == std::vector<std::string>{tmp / (file_name + ".tmp")});
    CHECK(list(tmp.path).empty());
  }
}

// --- crash points --------------------------------------------------------

TEST_CASE("snapshot file: a crash at any write step leaves the old or the "
          "new generation",
          "[storage]") {
  log_capture quiet; // keeps the test output clean
  const auto older = make_gen(1, 'b', 50000);
  const auto old_gen = make_gen(2, 'a', 70001);
  const auto new_gen = make_gen(3, 'b', 90003);
  const auto third = make_gen(4, 'a', 1234);
  const auto tmp_name = file_name + ".tmp";
  const auto prev_tmp_name = file_name + ".prev.tmp";
  const auto prev_name = file_name + ".prev";

  for (auto kind : {crash_kind::exit0, crash_kind::sigkill}) {
    for (auto at : all_steps) {
      INFO("crash at " << to_string(at)
                       << (kind == crash_kind::sigkill ? " (SIGKILL)"
                                                       : " (_exit)"));
      const bool after_rename = at >= write_step::renamed;

      SECTION(std::string("with an old generation, crash at ") + to_string(at)
              + (kind == crash_kind::sigkill ? " by SIGKILL" : " by _exit")) {
        temp_dir tmp;
        {
          snapshot_file f(tmp.path, file_name);
          REQUIRE(write_ok(f, older));
          REQUIRE(write_ok(f, old_gen));
        }
        crash_write_at(tmp.path, at, kind, new_gen);

        snapshot_file f(tmp.path, file_name);
        auto r = f.load(check_exact({old_gen, new_gen}));
        CHECK(r.quarantined.empty());
        REQUIRE(r.source == load_source::newest);
        CHECK(r.contents == (after_rename ? new_gen : old_gen));
        CHECK(contains(r.removed, tmp / tmp_name) == !after_rename);
        CHECK(contains(r.removed, tmp / prev_tmp_name)
              == (at == write_step::prev_linked));
        CHECK(slurp(tmp / prev_name)
              == (at >= write_step::prev_renamed ? old_gen : older));

        // A following write and load work.
        REQUIRE(write_ok(f, third));
        CHECK(list(tmp.path) == std::vector<std::string>{file_name, prev_name});
        CHECK(slurp(tmp / prev_name) == (after_rename ? new_gen : old_gen));
        auto r2 = f.load(check_exact({third}));
        CHECK(r2.source == load_source::newest);
        CHECK(r2.contents == third);
        CHECK(r2.quarantined.empty());
        CHECK(r2.removed.empty());
      }

      if (is_prev_step(at))
        continue; // a first write has no prev steps
      SECTION(std::string("first write, crash at ") + to_string(at)
              + (kind == crash_kind::sigkill ? " by SIGKILL" : " by _exit")) {
        temp_dir tmp;
        crash_write_at(tmp.path, at, kind, new_gen);

        snapshot_file f(tmp.path, file_name);
        auto r = f.load(check_exact({new_gen}));
        CHECK(r.quarantined.empty());
        if (after_rename) {
          CHECK(r.source == load_source::newest);
          CHECK(r.contents == new_gen);
          CHECK(r.removed.empty());
        } else {
          CHECK(r.source == load_source::none);
          CHECK(r.contents.empty());
          CHECK(r.removed == std::vector<std::string>{tmp / tmp_name});
        }
        CHECK_FALSE(exists(tmp / prev_name));

        REQUIRE(write_ok(f, third));
        auto r2 = f.load(check_exact({third}));
        CHECK(r2.source == load_source::newest);
        CHECK(r2.contents == third);
        CHECK(slurp(tmp / prev_name)
              == (after_rename ? std::optional<std::string>(new_gen)
                               : std::nullopt));
      }
    }
  }
}

// --- random kill -9 ------------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "snapshot file: kill -9 at a random instant never "
                 "leaves a torn snapshot", "[storage]") {
  constexpr int rounds = 20;
  constexpr size_t body_size = 1 << 20;
  std::random_device rd;
  const auto seed = rd();
  INFO("seed " << seed);
  std::mt19937 rng(seed);

  uint64_t last_seq = 0;
  for (int round = 0; round < rounds; ++round) {
    // 0 to ~12 ms after the first write, spread over the rounds.
    std::uniform_int_distribution<int> jitter(0, 2000);
    const int delay_us = (round % 6) * 2000 + jitter(rng);
    INFO("round " << round << ", kill after " << delay_us << " us");

    int fd = -1;
    pid_t pid = fork_with_pipe(fd);
    if (pid == 0) {
      snapshot_file f(tmp.path, file_name);
      std::string error;
      for (uint64_t seq = last_seq + 1;; ++seq) {
        auto gen = make_gen(seq, seq % 2 == 0 ? 'a' : 'b', body_size);
        if (!f.write(gen, error))
          ::_exit(3);
        if (seq == last_seq + 1) {
          char c = 'w';
          if (::write(fd, &c, 1) != 1)
            ::_exit(4);
        }
      }
    }
    char c = 0;
    const bool written = read_exactly(fd, &c, 1);
    ::close(fd);
    if (!written) {
      ::kill(pid, SIGKILL);
      wait_for(pid);
      FAIL("the child's first write did not complete");
    }
    kill_child(pid, delay_us);

    snapshot_file f(tmp.path, file_name);
    auto r = f.load(check_gen);
    CHECK(r.quarantined.empty());
    REQUIRE(r.source == load_source::newest);
    auto seq = seq_of(r.contents);
    CHECK(seq > last_seq); // the child's first write completed
    CHECK(r.contents.size() > body_size);
    if (auto prev = slurp(tmp / (file_name + ".prev"))) {
      std::string why;
      auto prev_seq = parse_gen(*prev, why);
      INFO(why);
      REQUIRE(prev_seq.has_value());
      // Equal when the kill came between prev_renamed and renamed: F.prev
      // is then a second link to F.
      CHECK(*prev_seq <= seq);
    }
    CHECK(corrupt_files(tmp.path).empty());
    last_seq = seq;
  }

  // A final write in this process and load work.
  snapshot_file f(tmp.path, file_name);
  auto final_gen = make_gen(last_seq + 1, (last_seq + 1) % 2 == 0 ? 'a' : 'b',
                            body_size);
  REQUIRE(write_ok(f, final_gen));
  auto r = f.load(check_gen);
  CHECK(r.source == load_source::newest);
  CHECK(r.contents == final_gen);
  CHECK(r.removed.empty());
}

// --- write failures ------------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "snapshot file: write failures return false and "
                 "leave the newest generation", "[storage]") {
  SECTION("the directory path is a regular file, or under one") {
    for (std::string dir : {"plain", "plain/sub"}) {
      put(tmp / "plain", "not a directory");
      snapshot_file f(tmp / dir, file_name);
      std::string error;
      CHECK_FALSE(f.write("valid:one", error));
      INFO(dir << ": " << error);
      CHECK(error.find(tmp / "plain") != std::string::npos);
      CHECK(error.find(std::strerror(ENOTDIR)) != std::string::npos);
      CHECK(slurp(tmp / "plain") == std::string("not a directory"));
      CHECK(f.load(check_valid).source == load_source::none);
    }
  }
  SECTION("F.tmp cannot be created") {
    snapshot_file f(tmp.path, file_name);
    REQUIRE(write_ok(f, "valid:one"));
    REQUIRE(::mkdir((tmp / (file_name + ".tmp")).c_str(), 0755) == 0);
    std::string error;
    CHECK_FALSE(f.write("valid:two", error));
    INFO(error);
    CHECK(error.find(tmp / (file_name + ".tmp")) != std::string::npos);
    CHECK(error.find(std::strerror(EISDIR)) != std::string::npos);
    CHECK(slurp(tmp / file_name) == std::string("valid:one"));
    CHECK_FALSE(exists(tmp / (file_name + ".prev")));
    REQUIRE(::rmdir((tmp / (file_name + ".tmp")).c_str()) == 0);
    REQUIRE(write_ok(f, "valid:two"));
    CHECK(f.load(check_valid).contents == "valid:two");
  }
  SECTION("F.prev cannot be replaced") {
    snapshot_file f(tmp.path, file_name);
    REQUIRE(write_ok(f, "valid:one"));
    REQUIRE(::mkdir((tmp / (file_name + ".prev")).c_str(), 0755) == 0);
    put(tmp / (file_name + ".prev/inside"), "x");
    std::string error;
    CHECK_FALSE(f.write("valid:two", error));
    INFO(error);
    CHECK(error.find("rename") != std::string::npos);
    CHECK(slurp(tmp / file_name) == std::string("valid:one"));
    CHECK_FALSE(exists(tmp / (file_name + ".tmp")));
    CHECK_FALSE(exists(tmp / (file_name + ".prev.tmp")));
    CHECK(slurp(tmp / (file_name + ".prev/inside")) == std::string("x"));
  }
  SECTION("the directory is not writable") {
    snapshot_file f(tmp.path, file_name);
    REQUIRE(write_ok(f, "valid:one"));
    REQUIRE(::chmod(tmp.path.c_str(), 0555) == 0);
    if (::geteuid() == 0) {
      WARN("running as root: permissions are not enforced, case skipped");
    } else {
      std::string error;
      CHECK_FALSE(f.write("valid:two", error));
      INFO(error);
      CHECK(error.find(std::strerror(EACCES)) != std::string::npos);
      CHECK(slurp(tmp / file_name) == std::string("valid:one"));
    }
    REQUIRE(::chmod(tmp.path.c_str(), 0755) == 0);
  }
}
