// Tests of the append-only journal (storage/journal.hpp): CRC-32C, the record
// layout, round trips, torn tails at every byte offset, bit flips, gaps,
// rotation, crash points (a forked child killed with SIGKILL at each step),
// random kill -9 of a child appending in a loop, failed appends (a file size
// limit) and dump_journal.
#include <catch2/catch.hpp>

#include "storage/journal.hpp"
#include "tests/storage_files.hpp"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <regex>
#include <string_view>

#include <sys/resource.h>
#include <sys/stat.h>

using namespace vb::storage;
using namespace vb::test;

namespace {

const std::string base = "j";
const std::string main_name = "j.journal";
const std::string prev_name = "j.journal.prev";
const std::string next_name = "j.journal.next";

uint64_t file_size(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_size);
}

size_t lines_in(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

std::vector<std::string> corrupt_files(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& name : list(dir))
    if (name.rfind(main_name + ".corrupt-", 0) == 0)
      out.push_back(dir + "/" + name);
  return out;
}

void remove_corrupt_files(const std::string& dir) {
  for (auto& path : corrupt_files(dir))
    REQUIRE(::unlink(path.c_str()) == 0);
}

// The record `seq` of the tests: a JSON object of about `size` bytes.
std::string make_payload(uint64_t seq, size_t size = 24) {
  std::string s = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
  for (size_t i = 0; s.size() + 2 < size; ++i)
    s += static_cast<char>('a' + (seq + i) % 26);
  s += "\"}";
  return s;
}

// A record encoded by the test itself (the format of docs/journal.md).
std::string test_record(uint64_t seq, const std::string& payload,
                        bool continues = false) {
  std::string h(16, '\0');
  uint32_t word = static_cast<uint32_t>(payload.size())
                  | (continues ? 0x80000000u : 0u);
  for (int i = 0; i < 4; ++i)
    h[i] = static_cast<char>((word >> (8 * i)) & 0xff);
  for (int i = 0; i < 8; ++i)
    h[8 + i] = static_cast<char>((seq >> (8 * i)) & 0xff);
  uint32_t crc = crc32c(h.data(), 4);
  crc = crc32c(h.data() + 8, 8, crc);
  crc = crc32c(payload.data(), payload.size(), crc);
  for (int i = 0; i < 4; ++i)
    h[4 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return h + payload;
}

// A batch of records with seqs from `first`, encoded by the test.
std::string test_batch(uint64_t first, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i)
    out += test_record(first + i, make_payload(first + i), i + 1 < count);
  return out;
}

journal_replay open_journal(journal_file& j, uint64_t snapshot_seq = 0) {
  journal_replay r;
  std::string error;
  bool ok = j.open(snapshot_seq, r, error);
  INFO("open: " << error);
  REQUIRE(ok);
  return r;
}

journal_replay reopen(const std::string& dir, uint64_t snapshot_seq = 0) {
  journal_file j(dir, base);
  return open_journal(j, snapshot_seq);
}

bool append_ok(journal_file& j, const std::vector<std::string>& payloads) {
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  std::string error;
  bool ok = j.append(views, error);
  if (!ok)
    UNSCOPED_INFO("append failed: " << error);
  return ok;
}

// Appends the records `first` .. `first + count - 1` as one batch.
bool append_seqs(journal_file& j, uint64_t first, size_t count,
                 size_t size = 24) {
  std::vector<std::string> payloads;
  for (size_t i = 0; i < count; ++i)
    payloads.push_back(make_payload(first + i, size));
  return append_ok(j, payloads);
}

std::vector<uint64_t> seqs_of(const journal_replay& r) {
  std::vector<uint64_t> out;
  for (auto& rec : r.records)
    out.push_back(rec.seq);
  return out;
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t s = first; s <= last; ++s)
    out.push_back(s);
  return out;
}

// Every record holds make_payload(seq, size) for its seq.
bool payloads_match(const journal_replay& r, size_t size = 24) {
  for (auto& rec : r.records)
    if (rec.payload != make_payload(rec.seq, size))
      return false;
  return true;
}

// Forks a child that opens the journal and runs `body`; the hook kills it
// with SIGKILL at step `at`. The child must die there.
void crash_at(const std::string& dir, journal_step at,
              const std::function<bool(journal_file&)>& body,
              uint64_t snapshot_seq = 0) {
  pid_t pid = fork_child();
  if (pid == 0) {
    journal_file j(dir, base);
    j.on_step([at](journal_step s) {
      if (s == at)
        ::kill(::getpid(), SIGKILL);
    });
    journal_replay r;
    std::string error;
    if (!j.open(snapshot_seq, r, error))
      ::_exit(11);
    ::_exit(body(j) ? 10 : 12); // the step was never reached
  }
  require_killed(pid);
}

// Runs `body` in a forked child and returns what it answered (its report:
// "ok" or what went wrong). For checks that change the process (rlimits).
std::string in_child(const std::function<std::string()>& body) {
  int fd = -1;
  pid_t pid = fork_with_pipe(fd);
  if (pid == 0) {
    auto report = body();
    const char* p = report.data();
    size_t left = report.size();
    while (left > 0) {
      auto n = ::write(fd, p, left);
      if (n <= 0)
        ::_exit(2);
      p += n;
      left -= static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  std::string report;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    report.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  int status = wait_for(pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return report;
}

// A journal written through journal_file in batches, and where each record
// and batch sits in the file.
struct built_journal {
  std::string bytes;
  std::vector<journal_record> records;
  std::vector<size_t> offset;      // per record
  std::vector<size_t> end;         // per record
  std::vector<size_t> batch_of;    // per record
  std::vector<size_t> batch_start; // per batch: offset
  std::vector<size_t> batch_first; // per batch: index of its first record
};

built_journal build(const std::string& dir, const std::vector<size_t>& batches,
                    const std::function<size_t(uint64_t)>& size_of) {
  built_journal b;
  journal_file j(dir, base);
  open_journal(j);
  uint64_t seq = 1;
  size_t off = 0;
  for (size_t k = 0; k < batches.size(); ++k) {
    std::vector<std::string> payloads;
    b.batch_start.push_back(off);
    b.batch_first.push_back(b.records.size());
    for (size_t i = 0; i < batches[k]; ++i, ++seq) {
      auto p = make_payload(seq, size_of(seq));
      payloads.push_back(p);
      b.records.push_back({seq, p});
      b.offset.push_back(off);
      off += 16 + p.size();
      b.end.push_back(off);
      b.batch_of.push_back(k);
    }
    REQUIRE(append_ok(j, payloads));
  }
  b.bytes = *slurp(dir + "/" + main_name);
  REQUIRE(b.bytes.size() == off);
  return b;
}

// What open() must give after the byte at `pos` of `b` was damaged: the
// records of the batches before the damaged record's batch, and a quarantine
// unless the damaged record is the last one (then it is a torn tail).
void check_damaged(const temp_dir& tmp, const built_journal& b, size_t pos,
                   const std::string& damaged) {
  size_t k = 0;
  while (b.end[k] <= pos)
    ++k;
  const size_t batch = b.batch_of[k];
  const size_t kept = b.batch_first[batch];
  const bool last = k + 1 == b.records.size();
  INFO("damaged byte " << pos << " in record " << b.records[k].seq
                       << " (batch " << batch << ")");

  journal_file j(tmp.path, base);
  auto r = open_journal(j);
  REQUIRE(r.records.size() == kept);
  for (size_t i = 0; i < kept; ++i) {
    CHECK(r.records[i].seq == b.records[i].seq);
    CHECK(r.records[i].payload == b.records[i].payload);
  }
  CHECK(r.last_seq == kept);
  CHECK(j.next_seq() == kept + 1);
  CHECK_FALSE(r.gap);
  CHECK(slurp(tmp / main_name) == b.bytes.substr(0, b.batch_start[batch]));
  if (last) {
    CHECK(r.quarantined.empty());
    CHECK(r.truncated.size() == 1);
    CHECK(corrupt_files(tmp.path).empty());
  } else {
    CHECK(r.truncated.empty());
    REQUIRE(r.quarantined.size() == 1);
    CHECK(slurp(r.quarantined[0]) == damaged);
    CHECK(corrupt_files(tmp.path) == r.quarantined);
  }
}

// An open journal in a fresh directory.
struct open_journal_fixture : quiet_dir {
  journal_file j{tmp.path, base};
  open_journal_fixture() { open_journal(j); }
};

const std::vector<journal_step> append_steps = {
  journal_step::append_started, journal_step::append_partly_written,
  journal_step::append_written, journal_step::append_synced};

const std::vector<journal_step> rotation_steps = {
  journal_step::next_created, journal_step::next_dir_synced,
  journal_step::main_renamed, journal_step::next_renamed,
  journal_step::rotation_dir_synced};

// A plain bitwise CRC-32C, to check the table-driven one against.
uint32_t crc32c_bitwise(const unsigned char* p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k)
      crc = (crc & 1u) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

} // namespace

// --- CRC-32C and the record layout ---------------------------------------

TEST_CASE("crc32c matches the Castagnoli test vectors", "[journal]") {
  CHECK(crc32c("123456789", 9) == 0xE3069283u);
  const std::string zeros(32, '\0');
  CHECK(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  const std::string ones(32, '\xff');
  CHECK(crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  std::string up, down;
  for (int i = 0; i < 32; ++i) {
    up += static_cast<char>(i);
    down += static_cast<char>(31 - i);
  }
  CHECK(crc32c(up.data(), up.size()) == 0x46DD794Eu);
  CHECK(crc32c(down.data(), down.size()) == 0x113FDB5Cu);
  CHECK(crc32c("", 0) == 0u);
}

TEST_CASE("crc32c chains and agrees with a bitwise CRC at every length and "
          "alignment",
          "[journal]") {
  std::mt19937 rng(12345);
  std::vector<unsigned char> buf(300);
  for (auto& c : buf)
    c = static_cast<unsigned char>(rng());
  for (size_t start = 0; start < 8; ++start)
    for (size_t n = 0; start + n <= 100; ++n)
      REQUIRE(crc32c(buf.data() + start, n)
              == crc32c_bitwise(buf.data() + start, n));
  const auto whole = crc32c(buf.data(), buf.size());
  for (size_t k = 0; k <= buf.size(); ++k)
    REQUIRE(crc32c(buf.data() + k, buf.size() - k, crc32c(buf.data(), k))
            == whole);
}

TEST_CASE_METHOD(open_journal_fixture, "a record is its length, CRC-32C, seq "
                 "and payload, little-endian, with bit 31 of the length on "
                 "all but a batch's last record", "[journal]") {
  REQUIRE(append_ok(j, {"{\"a\":1}"}));
  REQUIRE(append_ok(j, {"{\"b\":2}", "{\"c\":3}"}));
  auto bytes = *slurp(tmp / main_name);
  CHECK(bytes
        == test_record(1, "{\"a\":1}") + test_record(2, "{\"b\":2}", true)
             + test_record(3, "{\"c\":3}"));
  // The first header by hand: length 7, seq 1, the CRC over bytes 0-3,
  // 8-15 and the payload.
  const std::string len("\x07\x00\x00\x00", 4);
  const std::string seq("\x01\x00\x00\x00\x00\x00\x00\x00", 8);
  CHECK(bytes.substr(0, 4) == len);
  CHECK(bytes.substr(8, 8) == seq);
  const std::string covered = len + seq + "{\"a\":1}";
  const uint32_t crc = crc32c(covered.data(), covered.size());
  CHECK(static_cast<unsigned char>(bytes[4]) == (crc & 0xff));
  CHECK(static_cast<unsigned char>(bytes[5]) == ((crc >> 8) & 0xff));
  CHECK(static_cast<unsigned char>(bytes[6]) == ((crc >> 16) & 0xff));
  CHECK(static_cast<unsigned char>(bytes[7]) == (crc >> 24));
  CHECK(bytes.substr(16, 7) == "{\"a\":1}");
  // The batch's first record has bit 31 of its length set.
  CHECK(static_cast<unsigned char>(bytes[23 + 3]) == 0x80);
  CHECK(static_cast<unsigned char>(bytes[23 + 23 + 3]) == 0x00);
  CHECK(j.active_bytes() == bytes.size());
}

// --- round trips ---------------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "appended batches replay after a reopen with the "
                 "same seqs", "[journal]") {
  {
    journal_file j(tmp.path, base);
    CHECK(j.main_path() == tmp / main_name);
    CHECK(j.prev_path() == tmp / prev_name);
    CHECK(j.next_path() == tmp / next_name);
    auto r = open_journal(j);
    CHECK(r.records.empty());
    CHECK(j.next_seq() == 1);
    CHECK(j.active_path() == tmp / main_name);
    REQUIRE(append_seqs(j, 1, 1));
    REQUIRE(append_seqs(j, 2, 3));
    REQUIRE(append_seqs(j, 5, 2));
    CHECK(j.next_seq() == 7);
    CHECK(j.active_bytes() == file_size(tmp / main_name));
    // An empty batch is a no-op.
    std::string error;
    CHECK(j.append({}, error));
    CHECK(j.next_seq() == 7);
    CHECK(j.active_bytes() == file_size(tmp / main_name));
  }
  {
    journal_file j(tmp.path, base);
    auto r = open_journal(j);
    CHECK(seqs_of(r) == range(1, 6));
    CHECK(payloads_match(r));
    CHECK(r.last_seq == 6);
    CHECK(j.next_seq() == 7);
    CHECK(r.truncated.empty());
    CHECK(r.quarantined.empty());
    CHECK(r.removed.empty());
    CHECK_FALSE(r.gap);
    CHECK_FALSE(r.rotation_pending);
    CHECK(j.active_bytes() == file_size(tmp / main_name));
    REQUIRE(append_seqs(j, 7, 2));
    CHECK(j.next_seq() == 9);
  }
  auto r = reopen(tmp.path);
  CHECK(seqs_of(r) == range(1, 8));
  CHECK(payloads_match(r));
  CHECK(list(tmp.path) == std::vector<std::string>{main_name});
}

TEST_CASE_METHOD(quiet_dir, "an empty journal opens with no records",
                 "[journal]") {
  SECTION("no file at all") {}
  SECTION("a file of 0 bytes") { put(tmp / main_name, ""); }
  journal_file j(tmp.path, base);
  auto r = open_journal(j);
  CHECK(r.records.empty());
  CHECK(r.last_seq == 0);
  CHECK(r.truncated.empty());
  CHECK(r.quarantined.empty());
  CHECK(r.removed.empty());
  CHECK_FALSE(r.gap);
  CHECK_FALSE(r.rotation_pending);
  CHECK(j.next_seq() == 1);
  CHECK(j.active_bytes() == 0);
  CHECK(file_size(tmp / main_name) == 0); // created when missing
  REQUIRE(append_seqs(j, 1, 2));
  CHECK(seqs_of(reopen(tmp.path)) == range(1, 2));
}

TEST_CASE_METHOD(quiet_dir, "records up to the snapshot's seq are skipped",
                 "[journal]") {
  // No snapshot, one in the middle, one holding every record, one past them.
  const auto [snapshot_seq, last] = GENERATE(
    table<uint64_t, uint64_t>({{0, 5}, {3, 5}, {5, 5}, {9, 9}}));
  INFO("snapshot seq " << snapshot_seq);
  {
    journal_file j(tmp.path, base);
    open_journal(j);
    REQUIRE(append_seqs(j, 1, 2));
    REQUIRE(append_seqs(j, 3, 3));
  }
  journal_file j(tmp.path, base);
  auto r = open_journal(j, snapshot_seq);
  CHECK(seqs_of(r) == range(snapshot_seq + 1, 5));
  CHECK(payloads_match(r));
  CHECK(r.last_seq == last);
  CHECK_FALSE(r.gap);
  CHECK(j.next_seq() == last + 1);
  if (snapshot_seq == 9) {
    REQUIRE(append_seqs(j, 10, 1));
    auto r2 = reopen(tmp.path, 9);
    CHECK(seqs_of(r2) == std::vector<uint64_t>{10});
    CHECK(r2.quarantined.empty());
    CHECK(r2.truncated.empty());
  }
}

TEST_CASE_METHOD(quiet_dir, "open creates the directory, and fails when it "
                 "cannot", "[journal]") {
  SECTION("missing parents are created") {
    journal_file j(tmp / "a/b/c", base);
    auto r = open_journal(j);
    CHECK(r.records.empty());
    CHECK(std::filesystem::is_regular_file(tmp / ("a/b/c/" + main_name)));
    REQUIRE(append_seqs(j, 1, 1));
  }
  SECTION("the directory path is a regular file") {
    put(tmp / "plain", "not a directory");
    journal_file j(tmp / "plain", base);
    journal_replay r;
    std::string error;
    CHECK_FALSE(j.open(0, r, error));
    INFO(error);
    CHECK(error.find(tmp / "plain") != std::string::npos);
    CHECK(error.find(std::strerror(ENOTDIR)) != std::string::npos);
    // Appends refuse a journal that is not open.
    CHECK_FALSE(j.append({"{}"}, error));
    CHECK_FALSE(j.begin_rotation(error));
  }
  SECTION("the active segment cannot be opened") {
    REQUIRE(::mkdir((tmp / main_name).c_str(), 0755) == 0);
    journal_file j(tmp.path, base);
    journal_replay r;
    std::string error;
    CHECK_FALSE(j.open(0, r, error));
    INFO(error);
    CHECK(error.find(tmp / main_name) != std::string::npos);
  }
}

TEST_CASE_METHOD(open_journal_fixture, "a payload above the maximum is "
                 "refused and nothing is written", "[journal]") {
  REQUIRE(append_seqs(j, 1, 1));
  const auto size = j.active_bytes();
  std::string big(vb::storage::journal_max_payload + 1, 'x');
  std::string error;
  CHECK_FALSE(j.append({make_payload(2), big}, error));
  INFO(error);
  CHECK(error.find("maximum") != std::string::npos);
  CHECK(j.next_seq() == 2);
  CHECK(file_size(tmp / main_name) == size);
  REQUIRE(append_seqs(j, 2, 1));
  CHECK(seqs_of(reopen(tmp.path)) == range(1, 2));
}

// --- torn tails ----------------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "a torn last record is cut off at every byte "
                 "offset and the records before it are kept", "[journal]") {
  auto b = build(tmp.path, {1, 1, 1}, [](uint64_t) { return 40; });
  const size_t prev_end = b.offset[2];
  const size_t last_len = b.end[2] - b.offset[2];
  for (size_t cut = 0; cut <= last_len; ++cut) {
    INFO("the last record cut after " << cut << " of " << last_len
                                      << " bytes");
    put(tmp / main_name, b.bytes.substr(0, prev_end + cut));
    const bool whole = cut == last_len;
    {
      log_capture log;
      journal_file j(tmp.path, base);
      auto r = open_journal(j);
      CHECK(seqs_of(r) == range(1, whole ? 3 : 2));
      CHECK(payloads_match(r, 40));
      CHECK(r.quarantined.empty());
      CHECK(j.next_seq() == (whole ? 4u : 3u));
      if (whole || cut == 0) {
        CHECK(r.truncated.empty());
        CHECK(log.line("warning").empty());
      } else {
        CHECK(r.truncated
              == std::vector<std::string>{tmp / main_name + " at offset "
                                          + std::to_string(prev_end)});
        auto line = log.line("warning");
        INFO(log.text());
        CHECK(line.find(tmp / main_name) != std::string::npos);
        CHECK(line.find("offset " + std::to_string(prev_end))
              != std::string::npos);
      }
      CHECK(file_size(tmp / main_name) == (whole ? b.bytes.size() : prev_end));
      CHECK(j.active_bytes() == file_size(tmp / main_name));
      // Appending afterwards works and replays.
      REQUIRE(append_seqs(j, j.next_seq(), 1, 40));
    }
    auto r = reopen(tmp.path);
    CHECK(seqs_of(r) == range(1, whole ? 4 : 3));
    CHECK(payloads_match(r, 40));
    CHECK(r.truncated.empty());
    CHECK(corrupt_files(tmp.path).empty());
  }
}

TEST_CASE_METHOD(quiet_dir, "a torn last batch is cut off whole at every byte "
                 "offset", "[journal]") {
  auto b = build(tmp.path, {2, 3}, [](uint64_t seq) { return 20 + seq * 3; });
  const size_t batch_start = b.batch_start[1];
  for (size_t cut = batch_start; cut <= b.bytes.size(); ++cut) {
    INFO("the file cut at " << cut << " of " << b.bytes.size());
    put(tmp / main_name, b.bytes.substr(0, cut));
    const bool whole = cut == b.bytes.size();
    journal_file j(tmp.path, base);
    auto r = open_journal(j);
    CHECK(seqs_of(r) == range(1, whole ? 5 : 2));
    CHECK(r.quarantined.empty());
    CHECK(r.truncated.size() == (whole || cut == batch_start ? 0u : 1u));
    CHECK(file_size(tmp / main_name) == (whole ? cut : batch_start));
    CHECK(j.next_seq() == (whole ? 6u : 3u));
  }
}

// --- bit flips -----------------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "a bit flip at every byte of a small journal "
                 "never yields a record that was not written", "[journal]") {
  auto b = build(tmp.path, {1, 2, 1, 3},
                 [](uint64_t seq) { return 18 + seq % 5; });
  for (size_t pos = 0; pos < b.bytes.size(); ++pos) {
    auto damaged = b.bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << (pos % 8)));
    put(tmp / main_name, damaged);
    check_damaged(tmp, b, pos, damaged);
    remove_corrupt_files(tmp.path);
  }
}

TEST_CASE_METHOD(quiet_dir, "a bit flip at random positions of a larger "
                 "journal keeps a prefix of the records", "[journal]") {
  std::random_device rd;
  const auto seed = rd();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  std::vector<size_t> batches;
  for (int i = 0; i < 120; ++i)
    batches.push_back(1 + rng() % 4);
  auto b = build(tmp.path, batches,
                 [](uint64_t seq) { return 10 + (seq * 7919) % 300; });
  std::uniform_int_distribution<size_t> at(0, b.bytes.size() - 1);
  for (int round = 0; round < 300; ++round) {
    const auto pos = at(rng);
    auto damaged = b.bytes;
    damaged[pos] = static_cast<char>(damaged[pos] ^ (1 << (rng() % 8)));
    put(tmp / main_name, damaged);
    check_damaged(tmp, b, pos, damaged);
    remove_corrupt_files(tmp.path);
  }
}

// --- corruption, gaps, leftovers -----------------------------------------

TEST_CASE_METHOD(quiet_dir, "a corrupt record before valid ones moves the "
                 "segment aside and keeps the records before it", "[journal]") {
  auto b = build(tmp.path, {1, 1, 1, 1}, [](uint64_t) { return 30; });
  auto damaged = b.bytes;
  const size_t bad = b.offset[1];
  damaged[bad + 20] ^= 0x04; // in the payload of record 2
  put(tmp / main_name, damaged);

  const auto now = std::time(nullptr);
  // Decoys with the names the next seconds would give: never overwritten.
  std::vector<std::string> decoys;
  for (int k = 0; k < 3; ++k) {
    auto name = tmp / (main_name + ".corrupt-" + utc_stamp(now + k));
    put(name, "decoy " + std::to_string(k));
    decoys.push_back(name);
  }

  log_capture log;
  journal_file j(tmp.path, base);
  auto r = open_journal(j);
  CHECK(seqs_of(r) == std::vector<uint64_t>{1});
  CHECK(r.truncated.empty());
  REQUIRE(r.quarantined.size() == 1);
  const auto& moved = r.quarantined[0];
  CHECK(std::regex_match(
    std::filesystem::path(moved).filename().string(),
    std::regex(R"(j\.journal\.corrupt-\d{8}T\d{6}Z(-\d+)?)")));
  CHECK(slurp(moved) == damaged); // byte for byte
  for (size_t k = 0; k < decoys.size(); ++k)
    CHECK(slurp(decoys[k]) == "decoy " + std::to_string(k));
  CHECK(slurp(tmp / main_name) == b.bytes.substr(0, bad));
  CHECK(j.next_seq() == 2);

  // One error line: the file, the offset, the new name.
  auto line = log.line("error");
  INFO(log.text());
  CHECK(line.find(tmp / main_name) != std::string::npos);
  CHECK(line.find("offset " + std::to_string(bad)) != std::string::npos);
  CHECK(line.find(moved) != std::string::npos);

  // Appends continue after the prefix; the next open is clean.
  REQUIRE(append_seqs(j, 2, 2, 30));
  auto r2 = reopen(tmp.path);
  CHECK(seqs_of(r2) == range(1, 3));
  CHECK(payloads_match(r2, 30));
  CHECK(r2.quarantined.empty());
  CHECK(r2.truncated.empty());
  CHECK(corrupt_files(tmp.path).size() == decoys.size() + 1);
}

TEST_CASE_METHOD(quiet_dir, "a whole record whose seq does not increase is "
                 "corruption, even as the last record", "[journal]") {
  const auto bytes = test_batch(1, 1) + test_batch(2, 1) + test_batch(2, 1);
  put(tmp / main_name, bytes);
  auto r = reopen(tmp.path);
  CHECK(seqs_of(r) == range(1, 2));
  REQUIRE(r.quarantined.size() == 1);
  CHECK(slurp(r.quarantined[0]) == bytes);
  CHECK(slurp(tmp / main_name) == test_batch(1, 1) + test_batch(2, 1));
}

TEST_CASE_METHOD(quiet_dir, "a gap in the seqs stops the replay and new seqs "
                 "go above every seq on disk", "[journal]") {
  SECTION("the records start after the snapshot's seq + 1") {
    put(tmp / main_name, test_batch(10, 2));
    log_capture log;
    journal_file j(tmp.path, base);
    auto r = open_journal(j, 5);
    CHECK(r.records.empty());
    CHECK(r.gap);
    CHECK(r.last_seq == 5);
    CHECK(j.next_seq() == 12);
    auto line = log.line("error");
    INFO(log.text());
    CHECK(line.find("gap after seq 5") != std::string::npos);
    CHECK(line.find(tmp / main_name) != std::string::npos);
    REQUIRE(append_seqs(j, 12, 1));
    CHECK(seqs_of(reopen(tmp.path, 11)) == std::vector<uint64_t>{12});
    CHECK(seqs_of(reopen(tmp.path, 9)) == range(10, 12));
  }
  SECTION("a hole between the segments") {
    put(tmp / prev_name, test_batch(1, 3));
    put(tmp / main_name, test_batch(6, 2));
    journal_file j(tmp.path, base);
    auto r = open_journal(j);
    CHECK(seqs_of(r) == range(1, 3));
    CHECK(payloads_match(r));
    CHECK(r.gap);
    CHECK(r.last_seq == 3);
    CHECK(j.next_seq() == 8);
    auto r2 = reopen(tmp.path, 5);
    CHECK(seqs_of(r2) == range(6, 7));
    CHECK_FALSE(r2.gap);
  }
  SECTION("the same seq in two segments: the first segment's record") {
    put(tmp / prev_name, test_batch(1, 3));
    put(tmp / main_name,
        test_record(3, "{\"other\":3}") + test_batch(4, 2));
    auto r = reopen(tmp.path);
    CHECK(seqs_of(r) == range(1, 5));
    CHECK(payloads_match(r));
    CHECK_FALSE(r.gap);
  }
}

TEST_CASE_METHOD(quiet_dir, "leftover temporary files are removed at open",
                 "[journal]") {
  put(tmp / main_name, test_batch(1, 2));
  put(tmp / (main_name + ".tmp"), "half a prefix");
  put(tmp / (next_name + ".tmp"), "x");
  log_capture log;
  auto r = reopen(tmp.path);
  CHECK(seqs_of(r) == range(1, 2));
  CHECK(r.removed
        == std::vector<std::string>{tmp / (main_name + ".tmp"),
                                    tmp / (next_name + ".tmp")});
  CHECK(list(tmp.path) == std::vector<std::string>{main_name});
  CHECK(log.text().find(tmp / (main_name + ".tmp")) != std::string::npos);
}

// --- rotation ------------------------------------------------------------

TEST_CASE_METHOD(open_journal_fixture, "begin and finish rotation move "
                 "appends to .next and then rename the segments", "[journal]") {
  std::vector<journal_step> seen;
  j.on_step([&](journal_step s) { seen.push_back(s); });
  REQUIRE(append_seqs(j, 1, 3));
  CHECK(seen == append_steps);
  const auto main_bytes = *slurp(tmp / main_name);
  std::string error;
  CHECK_FALSE(j.finish_rotation(error)); // nothing pending
  CHECK(error.find("no rotation") != std::string::npos);

  seen.clear();
  REQUIRE(j.begin_rotation(error));
  CHECK(seen
        == std::vector<journal_step>{journal_step::next_created,
                                     journal_step::next_dir_synced});
  CHECK(j.rotation_pending());
  CHECK(j.last_main_seq() == 3);
  CHECK(j.active_path() == tmp / next_name);
  CHECK(j.active_bytes() == 0);
  CHECK(file_size(tmp / next_name) == 0);
  seen.clear();
  REQUIRE(j.begin_rotation(error)); // a no-op
  CHECK(seen.empty());
  CHECK(j.last_main_seq() == 3);

  REQUIRE(append_seqs(j, 4, 2));
  CHECK(slurp(tmp / main_name) == main_bytes);
  CHECK(j.active_bytes() == file_size(tmp / next_name));
  CHECK(j.next_seq() == 6);

  seen.clear();
  REQUIRE(j.finish_rotation(error));
  CHECK(seen
        == std::vector<journal_step>{journal_step::main_renamed,
                                     journal_step::next_renamed,
                                     journal_step::rotation_dir_synced});
  CHECK_FALSE(j.rotation_pending());
  CHECK(j.last_main_seq() == 0);
  CHECK(j.active_path() == tmp / main_name);
  CHECK(list(tmp.path) == std::vector<std::string>{main_name, prev_name});
  CHECK(slurp(tmp / prev_name) == main_bytes);

  // Appends go on in the renamed segment.
  REQUIRE(append_seqs(j, 6, 1));
  CHECK(j.active_bytes() == file_size(tmp / main_name));
  CHECK(seqs_of(reopen(tmp.path, 3)) == range(4, 6));
  auto all = reopen(tmp.path, 0);
  CHECK(seqs_of(all) == range(1, 6));
  CHECK(payloads_match(all));
  CHECK_FALSE(all.rotation_pending);

  // A second compaction replaces .prev.
  REQUIRE(j.begin_rotation(error));
  CHECK(j.last_main_seq() == 6);
  REQUIRE(append_seqs(j, 7, 1));
  REQUIRE(j.finish_rotation(error));
  CHECK(seqs_of(reopen(tmp.path, 6)) == std::vector<uint64_t>{7});
  CHECK(seqs_of(reopen(tmp.path, 3)) == range(4, 7));
  journal_file k(tmp.path, base);
  auto r = open_journal(k, 0); // records 1-3 are gone with the old .prev
  CHECK(r.records.empty());
  CHECK(r.gap);
  CHECK(k.next_seq() == 8);
}

TEST_CASE_METHOD(quiet_dir, "a compaction that never finished leaves .next "
                 "active, and a later one finishes it", "[journal]") {
  std::string error;
  {
    journal_file j(tmp.path, base);
    open_journal(j);
    REQUIRE(append_seqs(j, 1, 2));
    REQUIRE(j.begin_rotation(error));
    REQUIRE(append_seqs(j, 3, 1));
    // The snapshot failed: no finish_rotation.
  }
  journal_file j(tmp.path, base);
  auto r = open_journal(j, 0);
  CHECK(seqs_of(r) == range(1, 3));
  CHECK(r.rotation_pending);
  CHECK(j.rotation_pending());
  CHECK(j.last_main_seq() == 2);
  CHECK(j.active_path() == tmp / next_name);
  REQUIRE(append_seqs(j, 4, 1));
  REQUIRE(j.begin_rotation(error)); // still pending: a no-op
  REQUIRE(append_seqs(j, 5, 1));
  REQUIRE(j.finish_rotation(error));
  CHECK(slurp(tmp / prev_name) == test_batch(1, 2));
  CHECK(slurp(tmp / main_name)
        == test_batch(3, 1) + test_batch(4, 1) + test_batch(5, 1));
  CHECK(seqs_of(reopen(tmp.path, 2)) == range(3, 5));
  CHECK(seqs_of(reopen(tmp.path, 4)) == std::vector<uint64_t>{5});
}

// --- crash points --------------------------------------------------------

TEST_CASE("a crash at each append step leaves the batch whole or absent",
          "[journal]") {
  log_capture quiet; // keeps the test output clean
  constexpr size_t big = 50000; // half the batch holds two whole records
  for (auto at : append_steps) {
    SECTION(std::string("killed at ") + to_string(at)) {
      temp_dir tmp;
      {
        journal_file j(tmp.path, base);
        open_journal(j);
        REQUIRE(append_seqs(j, 1, 3, big));
      }
      const auto before = file_size(tmp / main_name);
      crash_at(tmp.path, at,
               [](journal_file& j) { return append_seqs(j, 4, 4, big); });
      const bool with_batch = at >= journal_step::append_written;
      journal_file j(tmp.path, base);
      auto r = open_journal(j);
      CHECK(seqs_of(r) == range(1, with_batch ? 7 : 3));
      CHECK(payloads_match(r, big));
      CHECK(r.quarantined.empty());
      CHECK(r.truncated.size()
            == (at == journal_step::append_partly_written ? 1u : 0u));
      if (!with_batch)
        CHECK(file_size(tmp / main_name) == before);
      // Appends continue.
      REQUIRE(append_seqs(j, j.next_seq(), 2, big));
      auto r2 = reopen(tmp.path);
      CHECK(seqs_of(r2) == range(1, with_batch ? 9 : 5));
      CHECK(payloads_match(r2, big));
    }
  }
}

TEST_CASE("a crash at each rotation step keeps every record exactly once",
          "[journal]") {
  log_capture quiet; // keeps the test output clean
  std::string error;
  for (auto at : rotation_steps) {
    SECTION(std::string("killed at ") + to_string(at)) {
      temp_dir tmp;
      {
        // An earlier compaction: .prev holds 1-3, main 4-5.
        journal_file j(tmp.path, base);
        open_journal(j);
        REQUIRE(append_seqs(j, 1, 3));
        REQUIRE(j.begin_rotation(error));
        REQUIRE(append_seqs(j, 4, 2));
        REQUIRE(j.finish_rotation(error));
      }
      const bool in_begin = at <= journal_step::next_dir_synced;
      crash_at(tmp.path, at, [in_begin](journal_file& j) {
        std::string e;
        if (!j.begin_rotation(e))
          return false;
        if (in_begin)
          return true;
        if (!append_seqs(j, 6, 2))
          return false;
        return j.finish_rotation(e);
      });
      const uint64_t last = in_begin ? 5 : 7;
      const bool pending = at <= journal_step::main_renamed;

      journal_file j(tmp.path, base);
      auto r = open_journal(j, 3); // the previous snapshot's seq
      CHECK(seqs_of(r) == range(4, last));
      CHECK(payloads_match(r));
      CHECK_FALSE(r.gap);
      CHECK(r.quarantined.empty());
      CHECK(r.truncated.empty());
      CHECK(r.rotation_pending == pending);
      CHECK(j.rotation_pending() == pending);
      CHECK(j.next_seq() == last + 1);
      if (pending)
        CHECK(j.last_main_seq() == 5);
      CHECK(seqs_of(reopen(tmp.path, 5)) == range(6, last));

      // The compaction finishes and appends continue.
      if (pending)
        REQUIRE(j.finish_rotation(error));
      CHECK_FALSE(j.rotation_pending());
      REQUIRE(append_seqs(j, last + 1, 1));
      CHECK(list(tmp.path) == std::vector<std::string>{main_name, prev_name});
      auto r2 = reopen(tmp.path, 5);
      CHECK(seqs_of(r2) == range(6, last + 1));
      CHECK(payloads_match(r2));
      CHECK(seqs_of(reopen(tmp.path, 3)) == range(4, last + 1));
    }
  }
}

TEST_CASE("a crash at each repair step of open leaves the same replay",
          "[journal]") {
  log_capture quiet; // keeps the test output clean
  auto noop = [](journal_file&) { return true; };
  SECTION("killed after cutting a torn tail") {
    temp_dir tmp;
    const auto good = test_batch(1, 3);
    put(tmp / main_name, good + test_batch(4, 2).substr(0, 30));
    crash_at(tmp.path, journal_step::truncated, noop);
    CHECK(slurp(tmp / main_name) == good);
    auto r = reopen(tmp.path);
    CHECK(seqs_of(r) == range(1, 3));
    CHECK(r.truncated.empty());
    CHECK(r.quarantined.empty());
  }
  for (auto at : {journal_step::quarantined, journal_step::prefix_rewritten}) {
    SECTION(std::string("killed at ") + to_string(at)) {
      temp_dir tmp;
      auto damaged = test_batch(1, 1) + test_batch(2, 1) + test_batch(3, 2);
      const auto bad = test_batch(1, 1).size();
      damaged[bad + 18] ^= 0x10;
      put(tmp / main_name, damaged);
      crash_at(tmp.path, at, noop);
      auto corrupt = corrupt_files(tmp.path);
      REQUIRE(corrupt.size() == 1);
      CHECK(slurp(corrupt[0]) == damaged);

      journal_file j(tmp.path, base);
      auto r = open_journal(j);
      CHECK(seqs_of(r) == std::vector<uint64_t>{1});
      CHECK(slurp(tmp / main_name) == test_batch(1, 1));
      if (at == journal_step::quarantined) {
        // The segment was still in place: moved aside (again).
        CHECK(r.removed == std::vector<std::string>{tmp / (main_name + ".tmp")});
        CHECK(r.quarantined.size() == 1);
        CHECK(corrupt_files(tmp.path).size() == 2);
      } else {
        CHECK(r.removed.empty());
        CHECK(r.quarantined.empty());
        CHECK(corrupt_files(tmp.path).size() == 1);
      }
      for (auto& path : corrupt_files(tmp.path))
        CHECK(slurp(path) == damaged);
      REQUIRE(append_seqs(j, 2, 1));
      CHECK(seqs_of(reopen(tmp.path)) == range(1, 2));
    }
  }
}

// --- random kill -9 ------------------------------------------------------

namespace {

// The batches of the random-kill test: sizes and payloads follow from the
// seqs, so the parent knows where each batch ends.
size_t batch_size_at(uint64_t first) {
  return 1 + static_cast<size_t>((first * 2654435761u) % 6);
}

size_t payload_size_at(uint64_t seq) {
  return 10 + static_cast<size_t>((seq * 7919) % 400000);
}

// A large record, cheap to build (the child spends its time in append).
std::string big_payload(uint64_t seq) {
  std::string s = "{\"seq\":" + std::to_string(seq) + ",\"pad\":\"";
  s.append(payload_size_at(seq), static_cast<char>('a' + seq % 26));
  s += "\"}";
  return s;
}

} // namespace

TEST_CASE_METHOD(quiet_dir, "kill -9 at a random instant never loses a "
                 "durable batch nor keeps part of one", "[journal]") {
  constexpr int rounds = 24;
  constexpr uint64_t starting = 1ull << 63; // "a batch's write starts" flag
  std::random_device rd;
  const auto seed = rd();
  INFO("seed " << seed);
  std::mt19937 rng(seed);

  uint64_t last_seq = 0;
  size_t torn = 0;
  for (int round = 0; round < rounds; ++round) {
    // Even rounds: 0 to ~12 ms after the first durable batch. Odd rounds:
    // 0 to 2 ms after a later batch began (its encoding, write or sync).
    const bool in_write = round % 2 == 1;
    std::uniform_int_distribution<int> jitter(0, 2000);
    const int delay_us = (in_write ? 0 : (round / 2 % 6) * 2000) + jitter(rng);
    INFO("round " << round << ", kill " << delay_us << " us after "
                  << (in_write ? "a write started" : "the first durable batch"));

    int fd = -1;
    pid_t pid = fork_with_pipe(fd);
    if (pid == 0) {
      journal_file j(tmp.path, base);
      journal_replay r;
      std::string error;
      if (!j.open(0, r, error))
        ::_exit(3);
      auto tell = [&](uint64_t value) {
        if (::write(fd, &value, sizeof(value)) != sizeof(value))
          ::_exit(5);
      };
      for (;;) {
        const uint64_t first = j.next_seq();
        std::vector<std::string> payloads;
        for (size_t i = 0; i < batch_size_at(first); ++i)
          payloads.push_back(big_payload(first + i));
        std::vector<std::string_view> views(payloads.begin(), payloads.end());
        tell(first | starting);
        if (!j.append(views, error))
          ::_exit(4);
        tell(j.next_seq() - 1); // durable: the batch's last seq
      }
    }
    auto next_message = [&](uint64_t& value) {
      return read_exactly(fd, &value, sizeof(value));
    };
    uint64_t reported = 0; // the last seq the child said was durable
    uint64_t value = 0;
    bool ok = true;
    while (ok && reported == 0) {
      ok = next_message(value);
      if (ok && (value & starting) == 0)
        reported = value;
    }
    while (ok && in_write) {
      ok = next_message(value);
      if (!ok)
        break;
      if ((value & starting) != 0)
        break;
      reported = value;
    }
    if (!ok) {
      ::kill(pid, SIGKILL);
      wait_for(pid);
      ::close(fd);
      FAIL("the child stopped before it was killed");
    }
    kill_child(pid, delay_us);
    while (next_message(value))
      if ((value & starting) == 0)
        reported = value;
    ::close(fd);

    journal_file j(tmp.path, base);
    auto r = open_journal(j);
    torn += r.truncated.size();
    CHECK(r.quarantined.empty());
    CHECK_FALSE(r.gap);
    // Contiguous from 1, nothing doubled, every record as written.
    REQUIRE(seqs_of(r) == range(1, r.last_seq));
    bool same = true;
    for (auto& rec : r.records)
      same = same && rec.payload == big_payload(rec.seq);
    CHECK(same);
    // Every batch reported durable is there, and the journal ends at the end
    // of a batch.
    CHECK(r.last_seq >= reported);
    CHECK(r.last_seq > last_seq);
    uint64_t end = 0;
    while (end < r.last_seq)
      end += batch_size_at(end + 1);
    CHECK(end == r.last_seq);
    CHECK(j.active_bytes() == file_size(tmp / main_name));
    CHECK(corrupt_files(tmp.path).empty());
    last_seq = r.last_seq;
  }
  // Not a check (timing decides): how many kills fell inside a write.
  INFO(torn << " of " << rounds << " kills left a torn tail");
  CHECK(last_seq > 0);
}

// --- append failures -----------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "a failed append leaves nothing behind and the "
                 "next one reuses its seqs", "[journal]") {
  {
    journal_file j(tmp.path, base);
    open_journal(j);
    REQUIRE(append_seqs(j, 1, 3));
  }
  const auto size = file_size(tmp / main_name);
  const std::string failed_marker = "FAILED-BATCH";
  auto report = in_child([&]() -> std::string {
    journal_file j(tmp.path, base);
    journal_replay r;
    std::string error;
    if (!j.open(0, r, error))
      return "open: " + error;
    if (j.next_seq() != 4)
      return "next_seq " + std::to_string(j.next_seq());
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved {};
    if (::getrlimit(RLIMIT_FSIZE, &saved) != 0)
      return "getrlimit failed";
    auto attempt = [&](rlim_t limit, const char* what) -> std::string {
      struct rlimit lim = saved;
      lim.rlim_cur = limit;
      if (::setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return std::string("setrlimit failed: ") + std::strerror(errno);
      std::vector<std::string> payloads;
      for (int i = 0; i < 3; ++i)
        payloads.push_back("{\"x\":\"" + failed_marker + std::string(1000, 'z')
                           + "\"}");
      std::vector<std::string_view> views(payloads.begin(), payloads.end());
      std::string e;
      if (j.append(views, e))
        return std::string(what) + ": the append succeeded";
      if (e.find(std::strerror(EFBIG)) == std::string::npos)
        return std::string(what) + ": unexpected error: " + e;
      if (j.next_seq() != 4)
        return std::string(what) + ": next_seq " + std::to_string(j.next_seq());
      if (j.active_bytes() != size)
        return std::string(what) + ": active_bytes "
               + std::to_string(j.active_bytes());
      struct stat st {};
      if (::stat(j.main_path().c_str(), &st) != 0
          || static_cast<uint64_t>(st.st_size) != size)
        return std::string(what) + ": the file size changed to "
               + std::to_string(st.st_size);
      return {};
    };
    // Part of the batch fits under the limit (a short write), then none.
    auto failure = attempt(size + 100, "a short write");
    if (!failure.empty())
      return failure;
    failure = attempt(size, "no room at all");
    if (!failure.empty())
      return failure;
    // The limit lifted: the same seqs go to the next batch.
    if (::setrlimit(RLIMIT_FSIZE, &saved) != 0)
      return "setrlimit (restore) failed";
    std::vector<std::string> ok_payloads = {make_payload(4), make_payload(5)};
    std::vector<std::string_view> views(ok_payloads.begin(), ok_payloads.end());
    if (!j.append(views, error))
      return "append after the limit was lifted: " + error;
    if (j.next_seq() != 6)
      return "next_seq after the append " + std::to_string(j.next_seq());
    return "ok";
  });
  CHECK(report == "ok");

  auto bytes = *slurp(tmp / main_name);
  CHECK(bytes.find(failed_marker) == std::string::npos);
  journal_file j(tmp.path, base);
  auto r = open_journal(j);
  CHECK(seqs_of(r) == range(1, 5));
  CHECK(payloads_match(r));
  CHECK(r.truncated.empty());
  CHECK(r.quarantined.empty());
  // And in this process too.
  REQUIRE(append_seqs(j, 6, 1));
  CHECK(seqs_of(reopen(tmp.path)) == range(1, 6));
}

// --- dump_journal --------------------------------------------------------

TEST_CASE_METHOD(quiet_dir, "dump_journal prints one JSON line per record",
                 "[journal]") {
  put(tmp / main_name, test_batch(1, 1) + test_batch(2, 2));
  std::ostringstream out, err;
  CHECK(dump_journal(tmp / main_name, out, err) == 0);
  const auto r1 = test_batch(1, 1).size();
  const auto r2 = test_record(2, make_payload(2), true).size();
  CHECK(out.str()
        == "{\"seq\":1,\"offset\":0,\"record\":" + make_payload(1) + "}\n"
             + "{\"seq\":2,\"offset\":" + std::to_string(r1)
             + ",\"record\":" + make_payload(2) + "}\n"
             + "{\"seq\":3,\"offset\":" + std::to_string(r1 + r2)
             + ",\"record\":" + make_payload(3) + "}\n");
  CHECK(err.str().empty());
  // It does not modify the file.
  CHECK(slurp(tmp / main_name) == test_batch(1, 1) + test_batch(2, 2));

  SECTION("an empty file") {
    put(tmp / main_name, "");
    std::ostringstream o, e;
    CHECK(dump_journal(tmp / main_name, o, e) == 0);
    CHECK(o.str().empty());
    CHECK(e.str().empty());
  }
}

TEST_CASE_METHOD(quiet_dir, "dump_journal stops at the first bad record and "
                 "names its offset", "[journal]") {
  const auto first = test_batch(1, 2);
  // Dumps `bytes`: `lines` records printed, then the bad record's offset
  // named, and the file left as it was. Returns {out, err}.
  auto dump_bad = [&](const std::string& bytes, size_t lines, size_t offset) {
    put(tmp / main_name, bytes);
    std::ostringstream out, err;
    CHECK(dump_journal(tmp / main_name, out, err) == 1);
    CHECK(lines_in(out.str()) == lines);
    INFO(err.str());
    CHECK(err.str().find("bad record at offset " + std::to_string(offset))
          != std::string::npos);
    CHECK(slurp(tmp / main_name) == bytes);
    return std::pair{out.str(), err.str()};
  };
  SECTION("a corrupt record before valid ones") {
    auto bytes = first + test_batch(3, 1) + test_batch(4, 1);
    bytes[first.size() + 20] ^= 0x01;
    auto [out, err] = dump_bad(bytes, 2, first.size());
    CHECK(out.find("\"seq\":2") != std::string::npos);
    INFO(err);
    CHECK(err.rfind(tmp / main_name + ": bad record at offset "
                      + std::to_string(first.size()) + ": CRC mismatch",
                    0)
          == 0);
  }
  SECTION("a torn last record") {
    dump_bad(first + test_batch(3, 1).substr(0, 20), 2, first.size());
  }
  SECTION("the file ends inside a batch") {
    auto bytes = first + test_record(3, make_payload(3), true);
    auto err = dump_bad(bytes, 3, bytes.size()).second;
    INFO(err);
    CHECK(err.find("inside the batch that begins at offset "
                   + std::to_string(first.size()))
          != std::string::npos);
  }
  SECTION("a missing file") {
    std::ostringstream out, err;
    CHECK(dump_journal(tmp / "missing.journal", out, err) == 1);
    CHECK(out.str().empty());
    CHECK(err.str().find(tmp / "missing.journal") != std::string::npos);
  }
}
