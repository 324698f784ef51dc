// A test double of the store seam (store_actor): keeps the records it was
// sent in memory, and fails every write while `failing` is set (a full
// disk), so actor tests check that nothing unacknowledged is visible. While
// `holding` is set, writes wait unanswered until release_writes(), so a test
// can have two writes in flight at once.
#pragma once

#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/interfaces.hpp"

namespace vb::test {

struct memory_store_state {
  static inline constexpr const char* name = "memory-store";
  std::vector<std::string> records;
  bool failing = false;
  uint64_t seq = 0;
  uint64_t failed_writes = 0;
  bool holding = false;
  std::vector<std::pair<store_batch, caf::typed_response_promise<uint64_t>>>
    held;
};

/// The store's interface, and `done`: answer the held writes.
using memory_store_actor = store_actor::extend<caf::reacts_to<atom::done>>;

inline memory_store_actor::behavior_type
memory_store(memory_store_actor::stateful_pointer<memory_store_state> self) {
  return {
    // Answered from within the actor: a promise is delivered in its context.
    [=](atom::done) {
      auto& st = self->state;
      st.holding = false;
      auto held = std::move(st.held);
      st.held.clear();
      for (auto& [batch, rp] : held) {
        for (auto& c : batch)
          st.records.push_back(std::move(c.record));
        st.seq += batch.size();
        rp.deliver(st.seq);
      }
    },
    [=](atom::write, store_batch& batch) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.failing) {
        ++st.failed_writes;
        return make_error(ec::storage_failed, "disk full (test)");
      }
      if (st.holding) {
        auto rp = self->make_response_promise<uint64_t>();
        st.held.emplace_back(std::move(batch), rp);
        return rp;
      }
      for (auto& c : batch)
        st.records.push_back(std::move(c.record));
      st.seq += batch.size();
      return st.seq;
    },
    [=](atom::write, store_batch& batch, atom::sweep) {
      auto& st = self->state;
      if (st.failing)
        return;
      for (auto& c : batch)
        st.records.push_back(std::move(c.record));
      st.seq += batch.size();
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      if (self->state.failing)
        return make_error(ec::storage_failed, "disk full (test)");
      return self->state.seq;
    },
    [=](atom::flush, atom::sweep) {},
    [=](atom::compact) -> caf::result<uint64_t> {
      if (self->state.failing)
        return make_error(ec::storage_failed, "disk full (test)");
      return self->state.seq;
    },
    [=](atom::stop) { self->quit(); },
  };
}

/// The double's state, to make it fail or read what it got.
inline memory_store_state& state_of(const store_actor& h) {
  return caf::actor_cast<
           memory_store_actor::stateful_pointer<memory_store_state>>(h)
    ->state;
}

/// Writes the held batches, in the order they came, and answers them (once
/// the test runs the scheduler); the store writes at once again.
inline void release_writes(const store_actor& h) {
  caf::anon_send(caf::actor_cast<memory_store_actor>(h), atom::done_v);
}

} // namespace vb::test
