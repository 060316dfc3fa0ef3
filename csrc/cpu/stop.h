// Stopping a long kernel call that runs without the GIL (one bucket FPS of a
// large cloud, many clouds, the closest pair of a large cloud: seconds in one
// call). The binding hands the kernel a Stop whose `check`, run only on the
// thread that made the call (the lead), takes the GIL for a moment and runs
// Python's signal handlers; when one raises (Ctrl-C, or SIGTERM under the
// command line), `stopped()` turns true on every thread, the kernel returns
// early with its outputs incomplete, and the binding raises the handler's
// exception. The lead looks at the clock every kStride calls and runs `check`
// at most every kEvery, so a pick pays a counter, not a clock read.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>

namespace hminsel {

class Stop {
 public:
  explicit Stop(std::function<bool()> check)
      : check_(std::move(check)), lead_(std::this_thread::get_id()), next_(Clock::now() + kEvery) {}

  // True once the run should end; any thread may ask, often. An empty `check`: never.
  bool stopped() {
    if (raised_.load(std::memory_order_relaxed)) return true;
    if (!check_ || ++calls_ % kStride != 0 || std::this_thread::get_id() != lead_) return false;
    const auto now = Clock::now();
    if (now < next_) return false;
    next_ = now + kEvery;
    if (!check_()) return false;
    raised_.store(true, std::memory_order_relaxed);
    return true;
  }

  // Whether a handler raised: the binding's cue to raise its exception.
  bool raised() const { return raised_.load(std::memory_order_relaxed); }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr int64_t kStride = 64;
  static constexpr std::chrono::milliseconds kEvery{100};
  std::function<bool()> check_;
  std::thread::id lead_;
  Clock::time_point next_;
  std::atomic<bool> raised_{false};
  thread_local static inline int64_t calls_ = 0;  // each thread's own count: no shared line
};

// `stop` may be null (no Python to ask: tests of the kernels, other callers).
inline bool stopped(Stop* stop) { return stop != nullptr && stop->stopped(); }

}  // namespace hminsel
