#pragma once

#include <exception>
#include <functional>
#include <utility>

namespace vb {

/// Owns a caller's callback and calls it at most once. If it is destroyed
/// without having been called (its request was dropped, say when an
/// io_context shut down), it calls it with `dropped()`. So every path calls
/// the callback exactly once, whichever handler happens to hold it last.
/// A callback that throws is reported to `threw` (with the exception's
/// what(), or null for a non-standard exception) and goes no further: the
/// I/O thread that called it goes on.
template <class R>
class call_once {
public:
  using fn = std::function<void(R)>;
  using dropped_fn = R (*)();
  using threw_fn = void (*)(const char* what);

  call_once(fn f, dropped_fn dropped, threw_fn threw)
    : f_(std::move(f)), dropped_(dropped), threw_(threw) {
  }

  call_once(call_once&& other) noexcept
    : f_(std::move(other.f_)), dropped_(other.dropped_), threw_(other.threw_) {
    other.f_ = nullptr;
  }

  call_once(const call_once&) = delete;
  call_once& operator=(const call_once&) = delete;
  call_once& operator=(call_once&&) = delete;

  ~call_once() {
    if (f_)
      (*this)(dropped_());
  }

  void operator()(R result) noexcept {
    if (!f_)
      return;
    auto f = std::move(f_);
    f_ = nullptr;
    try {
      f(std::move(result));
    } catch (const std::exception& e) {
      threw_(e.what());
    } catch (...) {
      threw_(nullptr);
    }
  }

  /// Not called yet.
  explicit operator bool() const noexcept {
    return static_cast<bool>(f_);
  }

private:
  fn f_;
  dropped_fn dropped_;
  threw_fn threw_;
};

} // namespace vb
