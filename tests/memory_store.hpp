// A test double of the store seam (store_actor): keeps the records it was
// sent in memory, and fails every write while `failing` is set (a full
// disk), so actor tests check that nothing unacknowledged is visible.
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
};

inline store_actor::behavior_type
memory_store(store_actor::stateful_pointer<memory_store_state> self) {
  return {
    [=](atom::write, store_batch& batch) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (st.failing) {
        ++st.failed_writes;
        return make_error(ec::storage_failed, "disk full (test)");
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
  return caf::actor_cast<store_actor::stateful_pointer<memory_store_state>>(h)
    ->state;
}

} // namespace vb::test
