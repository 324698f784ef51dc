#include "actors/journal_store.hpp"

#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/snapshot_writer.hpp"
#include "actors/stats.hpp"
#include "model/snapshot_codec.hpp"
#include "storage/journal.hpp"
#include "storage/snapshot_file.hpp"

namespace vb {

namespace {

/// An entry's id: the key alone at the top level, else parent \x1f key.
std::string image_key(const std::string& parent, const std::string& key) {
  if (parent.empty())
    return key;
  std::string k;
  k.reserve(parent.size() + key.size() + 1);
  k += parent;
  k += '\x1f';
  k += key;
  return k;
}

/// "bot_providers.json" -> "bot_providers": the journal's base name.
std::string base_name(const std::string& file_name) {
  auto dot = file_name.rfind('.');
  return dot == std::string::npos ? file_name : file_name.substr(0, dot);
}

/// A compaction's snapshot may take this long before it counts as failed.
constexpr auto compaction_timeout = std::chrono::seconds(120);

/// After a failed compaction, the next try waits this long.
constexpr auto compaction_retry = std::chrono::seconds(1);

} // namespace

// -- image ----------------------------------------------------------------------

void store_image::apply(const image_op& op) {
  auto k = image_key(op.parent, op.key);
  auto i = by_key_.find(k);
  // Frozen: the captured entries are read elsewhere; changes go aside.
  auto& target = frozen_ ? overlay_ : *base_;
  if (!op.json && !op.member) {
    if (i == by_key_.end())
      return;
    auto order = i->second;
    by_key_.erase(i);
    target.erase(order); // the view's string goes with its entry
    if (frozen_ && base_->count(order) != 0)
      erased_.insert(order);
    return;
  }
  auto entry = std::make_shared<image_entry>();
  entry->id = std::move(k);
  entry->split = op.parent.empty() ? 0 : op.parent.size() + 1;
  entry->json = op.json;
  entry->member = op.member;
  std::string_view view{entry->id};
  uint64_t order;
  if (i != by_key_.end()) {
    order = i->second;
    by_key_.erase(i); // its view points into the entry being replaced
  } else {
    order = next_++;
  }
  by_key_.emplace(view, order);
  target[order] = std::move(entry);
}

std::shared_ptr<const image_entries> store_image::capture() {
  if (frozen_)
    settle(); // not expected: one compaction at a time
  frozen_ = true;
  return base_;
}

void store_image::settle() {
  if (!frozen_)
    return;
  frozen_ = false;
  // The compaction's copy is gone by now (its job dropped it); if it is
  // not, the merge must not touch what it reads.
  if (base_.use_count() > 1)
    base_ = std::make_shared<image_entries>(*base_);
  for (auto order : erased_)
    base_->erase(order);
  for (auto& [order, e] : overlay_)
    (*base_)[order] = std::move(e);
  erased_.clear();
  overlay_.clear();
}

std::string render_providers(const image_entries& image, uint64_t seq) {
  std::vector<const std::string*> parts;
  parts.reserve(image.size());
  for (auto& [order, e] : image)
    if (e->split == 0 && e->json)
      parts.push_back(e->json.get());
  return encode_provider_fragments(parts, seq);
}

std::string render_lobbies(const image_entries& image, uint64_t seq) {
  // Members shared with their lobbies are rendered here, on the snapshot
  // writer's thread.
  std::vector<std::string> rendered;
  size_t members = 0;
  for (auto& [order, e] : image)
    if (!e->json && e->member)
      ++members;
  rendered.reserve(members);
  std::vector<lobby_parts> lobbies;
  std::unordered_map<std::string_view, size_t> index;
  for (auto& [order, e] : image) {
    if (e->split == 0) {
      if (!e->json)
        continue;
      index[e->key()] = lobbies.size();
      lobbies.push_back(lobby_parts{e->json.get(), {}});
    } else if (auto i = index.find(e->parent()); i != index.end()) {
      if (e->json) {
        lobbies[i->second].sessions.push_back(e->json.get());
      } else if (e->member) {
        rendered.push_back(session_json(*e->member));
        lobbies[i->second].sessions.push_back(&rendered.back());
      }
    }
  }
  return encode_lobby_parts(lobbies, seq);
}

// -- start-up -------------------------------------------------------------------

bool load_durable(const std::string& dir, const std::string& file_name,
                  const snapshot_decoder& decode, const record_replayer& replay,
                  journal_store_seed& seed, server_stats* stats,
                  const record_preparser& preparse) {
  seed.dir = dir;
  seed.file_name = file_name;
  storage::snapshot_file file{dir, file_name};
  uint64_t seq = 0;
  auto loaded = file.load([&](const std::string& text, std::string& why) {
    seq = 0;
    return decode(text, seq, why);
  });
  if (loaded.source == storage::load_source::previous)
    spdlog::warn("snapshot {}: loaded the previous generation", file.path());
  if (loaded.source == storage::load_source::none)
    seq = 0;
  if (stats)
    stats->quarantined_snapshots += loaded.quarantined.size();
  seed.journal = std::make_shared<storage::journal_file>(dir, base_name(file_name));
  storage::journal_replay records;
  std::string error;
  if (!seed.journal->open(seq, records, error)) {
    spdlog::error("journal of {}: cannot open: {}", file.path(), error);
    seed.journal.reset();
    return false;
  }
  if (stats) {
    auto& js = stats->journal(file_name);
    js.quarantined += records.quarantined.size();
    js.truncated += records.truncated.size();
    js.bytes = seed.journal->active_bytes();
  }
  size_t applied = 0;
  if (preparse && !records.records.empty()) {
    std::vector<const std::string*> payloads;
    payloads.reserve(records.records.size());
    for (auto& r : records.records)
      payloads.push_back(&r.payload);
    preparse(std::move(payloads));
  }
  for (auto& r : records.records) {
    std::string why;
    if (replay(r.payload, why))
      ++applied;
    else
      spdlog::error("journal of {}: record {} skipped: {}", file.path(),
                    r.seq, why);
  }
  spdlog::info("{}: snapshot at record {}, {} journal records replayed{}",
               file.path(), seq, applied,
               records.rotation_pending ? " (a compaction is unfinished)" : "");
  return true;
}

// -- the store ------------------------------------------------------------------

void journal_store_state::enqueue(store_batch batch, waiting w) {
  w.changes = batch.size();
  for (auto& c : batch)
    pending.push_back(std::move(c));
  waiters.push_back(std::move(w));
  if (flush_scheduled)
    return;
  // Nothing else queued: this change is the whole batch, written now. With
  // more waiting, the self-message gathers them first (the group commit).
  if (self->mailbox().empty()) {
    write_pending();
    return;
  }
  flush_scheduled = true;
  self->send(self, atom::flush_v, atom::sweep_v);
}

bool journal_store_state::write_pending() {
  auto answer = [this](const caf::error& err) {
    auto seq = last_seq - pending.size();
    for (auto& w : waiters) {
      seq += w.changes;
      if (!w.has_rp)
        continue;
      if (err)
        w.rp.deliver(err);
      else
        w.rp.deliver(seq);
    }
    waiters.clear();
    pending.clear();
  };
  if (pending.empty()) {
    answer({});
    return true;
  }
  auto* js = stats ? &stats->journal(seed->file_name) : nullptr;
  std::vector<std::string_view> views;
  views.reserve(pending.size());
  for (auto& c : pending)
    views.emplace_back(c.record);
  std::string error;
  auto start = std::chrono::steady_clock::now();
  auto ok = seed->journal->append(views, error);
  auto took = std::chrono::steady_clock::now() - start;
  if (!ok) {
    spdlog::error("journal of {}: append of {} records failed: {}",
                  seed->file_name, pending.size(), error);
    if (js)
      ++js->failures;
    // Nothing of the batch is visible: its owners answer storage_failed.
    pending.clear();
    for (auto& w : waiters)
      if (w.has_rp)
        w.rp.deliver(make_error(ec::storage_failed,
                                "journal write failed: " + error));
    waiters.clear();
    return false;
  }
  for (auto& c : pending)
    for (auto& op : c.ops)
      seed->image.apply(op);
  last_seq = seed->journal->next_seq() - 1;
  spdlog::debug("journal {}: {} records appended in {:.3f} ms (last {})",
                seed->file_name, pending.size(),
                std::chrono::duration<double, std::milli>(took).count(),
                last_seq);
  if (js) {
    ++js->appends;
    js->records += pending.size();
    js->bytes = seed->journal->active_bytes();
    js->sync.observe(std::chrono::duration_cast<std::chrono::nanoseconds>(took));
  }
  answer({});
  maybe_compact();
  return true;
}

void journal_store_state::maybe_compact() {
  auto& j = *seed->journal;
  if (compacting || (j.active_bytes() < seed->max_bytes && !j.rotation_pending()))
    return;
  if (std::chrono::steady_clock::now() < retry_at)
    return;
  start_compaction();
}

bool journal_store_state::start_compaction() {
  auto now = std::chrono::steady_clock::now();
  std::string error;
  if (!seed->journal->begin_rotation(error)) {
    spdlog::error("journal of {}: cannot start a compaction: {}",
                  seed->file_name, error);
    if (stats)
      ++stats->journal(seed->file_name).compaction_failures;
    retry_at = now + compaction_retry;
    return false;
  }
  compacting = true;
  compaction_started = now;
  final_running = std::move(final_waiting);
  final_waiting.clear();
  auto image = seed->image.capture();
  auto render = seed->render;
  auto seq = last_seq;
  // The job lets go of the image as soon as it is rendered, before the
  // writer answers, so that settle() merges in place.
  snapshot_job job{[image, render, seq]() mutable {
    auto held = std::move(image);
    return render(*held, seq);
  }};
  spdlog::debug("journal of {}: compacting {} entries at record {}",
                seed->file_name, image->size(), seq);
  self->request(writer, compaction_timeout, atom::write_v, std::move(job))
    .then([this, seq](uint64_t) { compacted(true, seq, {}); },
          [this, seq](caf::error& err) {
            compacted(false, seq, caf::to_string(err));
          });
  return true;
}

void journal_store_state::compacted(bool ok, uint64_t seq,
                                    const std::string& why) {
  compacting = false;
  seed->image.settle();
  auto* js = stats ? &stats->journal(seed->file_name) : nullptr;
  std::string error = why;
  if (ok && !seed->journal->finish_rotation(error))
    ok = false;
  auto finals = std::move(final_running);
  final_running.clear();
  for (auto& rp : finals) {
    if (ok)
      rp.deliver(seq);
    else
      rp.deliver(make_error(ec::storage_failed, "snapshot failed: " + error));
  }
  // A final snapshot asked for during this compaction follows at once.
  if (!final_waiting.empty() && !start_compaction()) {
    for (auto& rp : final_waiting)
      rp.deliver(make_error(ec::storage_failed, "snapshot failed"));
    final_waiting.clear();
  }
  if (!ok) {
    spdlog::error("journal of {}: compaction failed: {}", seed->file_name,
                  error);
    if (js)
      ++js->compaction_failures;
    retry_at = std::chrono::steady_clock::now() + compaction_retry;
    return;
  }
  auto took = std::chrono::steady_clock::now() - compaction_started;
  if (js) {
    ++js->compactions;
    js->bytes = seed->journal->active_bytes();
    js->compaction.observe(
      std::chrono::duration_cast<std::chrono::nanoseconds>(took));
  }
  spdlog::info("journal of {}: compacted into a snapshot at record {} in "
               "{:.1f} ms",
               seed->file_name, seq,
               std::chrono::duration<double, std::milli>(took).count());
}

store_actor::behavior_type
journal_store(store_actor::stateful_pointer<journal_store_state> self,
              std::shared_ptr<journal_store_seed> seed,
              snapshot_writer_actor writer, std::shared_ptr<server_stats> stats) {
  auto& st = self->state;
  st.self = self;
  st.seed = std::move(seed);
  st.writer = std::move(writer);
  st.stats = std::move(stats);
  st.last_seq = st.seed->journal->next_seq() - 1;
  // Stop only once what is queued before the exit is written.
  self->set_exit_handler([self](caf::exit_msg&) {
    self->send(self, atom::stop_v);
  });
  // A compaction a crash left unfinished is finished first; one that is due
  // by size waits for the first append, so that it does not compete with
  // the rest of the start-up.
  if (st.seed->journal->rotation_pending())
    st.maybe_compact();
  return {
    [=](atom::write, store_batch& batch) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      journal_store_state::waiting w;
      w.rp = rp;
      w.has_rp = true;
      self->state.enqueue(std::move(batch), std::move(w));
      return rp;
    },
    [=](atom::write, store_batch& batch, atom::sweep) {
      self->state.enqueue(std::move(batch), {});
    },
    [=](atom::flush) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      journal_store_state::waiting w;
      w.rp = rp;
      w.has_rp = true;
      self->state.enqueue({}, std::move(w));
      self->state.write_pending();
      return rp;
    },
    [=](atom::flush, atom::sweep) {
      self->state.flush_scheduled = false;
      self->state.write_pending();
    },
    [=](atom::compact) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto rp = self->make_response_promise<uint64_t>();
      if (!st.write_pending()) {
        rp.deliver(make_error(ec::storage_failed, "journal write failed"));
        return rp;
      }
      st.final_waiting.push_back(rp);
      if (!st.compacting && !st.start_compaction()) {
        for (auto& w : st.final_waiting)
          w.deliver(make_error(ec::storage_failed, "cannot start a snapshot"));
        st.final_waiting.clear();
      }
      return rp;
    },
    [=](atom::stop) {
      self->state.write_pending();
      self->quit();
    },
  };
}

store_handles spawn_journal_store(caf::actor_system& sys,
                                  std::shared_ptr<journal_store_seed> seed,
                                  std::shared_ptr<server_stats> stats,
                                  bool detached) {
  store_handles h;
  auto dir = seed->dir;
  auto file = seed->file_name;
  if (detached) {
    h.writer = sys.spawn<caf::detached>(snapshot_writer, dir, file, stats, true);
    h.store = sys.spawn<caf::detached>(journal_store, std::move(seed), h.writer,
                                       std::move(stats));
  } else {
    h.writer = sys.spawn(snapshot_writer, dir, file, stats, false);
    h.store = sys.spawn(journal_store, std::move(seed), h.writer,
                        std::move(stats));
  }
  return h;
}

} // namespace vb
