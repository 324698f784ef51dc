// Group commit of one snapshot file, for the actor that owns the state: a
// change is acknowledged once a write that contains it is durable, and the
// changes that arrive while a write is in flight share the next write.
// Lives in the owner's state and runs only in the owner's context.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "actors/interfaces.hpp"

namespace vb {

class group_commit {
public:
  /// Called once the change is durable (empty error) or could not be written.
  using ack = std::function<void(const caf::error&)>;

  /// Captures the owner's current state as a job (cheaply: immutable shared
  /// values); called when a write starts.
  using job_factory = std::function<snapshot_job()>;

  /// How long a write may take before its acknowledgements fail.
  static constexpr auto write_timeout = std::chrono::seconds(60);

  void init(snapshot_writer_actor writer, job_factory make_job) {
    writer_ = std::move(writer);
    make_job_ = std::move(make_job);
  }

  /// Marks the state changed without waiting (e.g. heartbeats); the next
  /// write contains it.
  void touch() {
    dirty_ = true;
  }

  /// Marks the state changed and calls `done` once it is durable.
  template <class Self>
  void commit(Self* self, ack done) {
    dirty_ = true;
    waiting_.push_back(std::move(done));
    start(self);
  }

  /// Writes the current state even when nothing changed, and answers `rp`
  /// with the generation once it is durable: the final snapshot's barrier.
  template <class Self, class Promise>
  void barrier(Self* self, Promise rp) {
    commit(self, [this, rp](const caf::error& err) mutable {
      if (err)
        rp.deliver(err);
      else
        rp.deliver(generation_);
    });
  }

  /// Writes pending changes, if any and no write is in flight.
  template <class Self>
  void flush(Self* self) {
    start(self);
  }

  /// The generation of the last durable write.
  uint64_t generation() const noexcept {
    return generation_;
  }

private:
  template <class Self>
  void start(Self* self) {
    if (writing_ || !dirty_)
      return;
    writing_ = true;
    dirty_ = false;
    auto batch = std::make_shared<std::vector<ack>>(std::move(waiting_));
    waiting_.clear();
    self->request(writer_, write_timeout, atom::write_v, make_job_())
      .then(
        [this, self, batch](uint64_t generation) {
          generation_ = generation;
          finish(self, *batch, caf::error{});
        },
        [this, self, batch](caf::error& err) {
          dirty_ = true; // not on disk: it must be written again
          finish(self, *batch, err);
        });
  }

  template <class Self>
  void finish(Self* self, std::vector<ack>& batch, const caf::error& err) {
    writing_ = false;
    for (auto& f : batch)
      f(err);
    if (!waiting_.empty())
      start(self);
  }

  snapshot_writer_actor writer_;
  job_factory make_job_;
  std::vector<ack> waiting_;
  bool writing_ = false;
  bool dirty_ = false;
  uint64_t generation_ = 0;
};

/// An acknowledgement that delivers `value` to a response promise, or the
/// write's error.
template <class Promise, class T>
group_commit::ack deliver_when_durable(Promise rp, T value) {
  return [rp, value = std::move(value)](const caf::error& err) mutable {
    if (err)
      rp.deliver(err);
    else
      rp.deliver(value);
  };
}

} // namespace vb
