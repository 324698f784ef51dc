// The snapshot writer: one per snapshot file, the only code that writes it.
// Spawned detached in production, so fsync never stalls the scheduler's
// workers or the state owner that asked for the write.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "actors/interfaces.hpp"
#include "storage/snapshot_file.hpp"

namespace vb {

struct server_stats;

struct snapshot_writer_state {
  static inline constexpr const char* name = "snapshot-writer";

  /// The file this writer owns, and its name (a label in /metrics).
  std::unique_ptr<storage::snapshot_file> file;
  std::string file_name;

  /// Counters for /metrics (may be null in tests).
  std::shared_ptr<server_stats> stats;

  /// Generations written since start.
  uint64_t generation = 0;

  /// On its own thread (detached): lowers that thread's priority (nice
  /// background_nice) at the first write.
  bool background = false;
  bool reniced = false;
  static constexpr int background_nice = 10;

  /// Renders and writes one job; returns an error when the write failed.
  caf::expected<uint64_t> write(const snapshot_job& job);
};

snapshot_writer_actor::behavior_type
snapshot_writer(snapshot_writer_actor::stateful_pointer<snapshot_writer_state> self,
                std::string dir, std::string file_name,
                std::shared_ptr<server_stats> stats, bool background = false);

} // namespace vb
