// The replay of a journal of keyed records (providers, idempotency keys; a
// lobby's members too) onto the items a snapshot left: the items by their
// string id, in the order first added, where a put replaces in place and a
// delete leaves a hole, so that a replay keeps the order a snapshot had.
// Each codec defines only how its records decode: keyed_replay<...>::apply.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vb {

/// Items of type T keyed by their member `Key`.
template <class T, std::string T::*Key>
class keyed_items {
public:
  keyed_items() = default;

  /// The items of a snapshot, each added as it comes.
  explicit keyed_items(std::vector<T> base) {
    for (auto& x : base)
      add(std::move(x));
  }

  /// Appends without looking: a snapshot that repeats an id keeps both, and
  /// the id names the last.
  void add(T x) {
    index_[x.*Key] = items_.size();
    items_.push_back(std::make_unique<T>(std::move(x)));
  }

  /// Replaces the item with x's id where it stands, or appends.
  void put(T x) {
    if (auto* old = find(x.*Key))
      *old = std::move(x);
    else
      add(std::move(x));
  }

  /// Removes the item with this id, if any.
  void erase(const std::string& id) {
    if (auto k = index_.find(id); k != index_.end()) {
      items_[k->second].reset();
      index_.erase(k);
    }
  }

  /// The item with this id, or null.
  T* find(const std::string& id) {
    auto k = index_.find(id);
    return k == index_.end() ? nullptr : items_[k->second].get();
  }

  /// The items left, in order; this is empty afterwards.
  std::vector<T> take() {
    std::vector<T> out;
    out.reserve(index_.size());
    for (auto& x : items_)
      if (x)
        out.push_back(std::move(*x));
    items_.clear();
    index_.clear();
    return out;
  }

private:
  std::vector<std::unique_ptr<T>> items_; // null: erased
  std::unordered_map<std::string, size_t> index_;
};

/// Items as a snapshot left them, with journal records applied in order.
template <class T, std::string T::*Key>
class keyed_replay {
public:
  explicit keyed_replay(std::vector<T> base) : items_(std::move(base)) {}

  /// Applies one record; false (and `why`) when it does not decode, and
  /// then nothing changed. Each codec specializes it for its records.
  bool apply(const std::string& payload, std::string& why);

  /// The items, in the order they were first put.
  std::vector<T> result() {
    return items_.take();
  }

private:
  keyed_items<T, Key> items_;
};

} // namespace vb
