#include "actors/snapshot_writer.hpp"

#include <chrono>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/stats.hpp"

namespace vb {

caf::expected<uint64_t> snapshot_writer_state::write(const snapshot_job& job) {
  if (background && !reniced) {
    // This thread renders and writes compactions: it yields the cores to
    // the request path when both are busy.
    reniced = true;
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)),
                      background_nice)
        != 0)
      spdlog::debug("snapshot {}: cannot lower the writer's priority",
                    file->path());
  }
  auto start = std::chrono::steady_clock::now();
  std::string error;
  auto ok = file->write(job.render(), error);
  auto took = std::chrono::steady_clock::now() - start;
  if (!ok) {
    spdlog::error("snapshot {}: write failed: {}", file->path(), error);
    if (stats) {
      ++stats->snapshot_failures;
      ++stats->snapshot(file_name).failures;
    }
    return make_error(ec::storage_failed, std::move(error));
  }
  ++generation;
  if (stats) {
    ++stats->snapshot_writes;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took);
    stats->snapshot_write_ns += ns.count();
    auto& per_file = stats->snapshot(file_name);
    ++per_file.writes;
    per_file.duration.observe(ns);
  }
  spdlog::debug("snapshot {}: generation {} written in {:.3f} ms",
                file->path(), generation,
                std::chrono::duration<double, std::milli>(took).count());
  return generation;
}

snapshot_writer_actor::behavior_type
snapshot_writer(snapshot_writer_actor::stateful_pointer<snapshot_writer_state> self,
                std::string dir, std::string file_name,
                std::shared_ptr<server_stats> stats, bool background) {
  self->state.file_name = file_name;
  self->state.background = background;
  self->state.file = std::make_unique<storage::snapshot_file>(std::move(dir),
                                                              std::move(file_name));
  self->state.stats = std::move(stats);
  return {
    [=](atom::write, const snapshot_job& job) -> caf::result<uint64_t> {
      auto res = self->state.write(job);
      if (!res)
        return std::move(res.error());
      return *res;
    },
  };
}

} // namespace vb
