// Threads on a shared machine: how many, a pool, and loops with no barrier.
//
// The thread count is set once from Python (hminsel/_threads.py: affinity,
// cgroup quota, HMINSEL_NUM_THREADS / OMP_NUM_THREADS) and every kernel uses
// at most that many threads: the caller (the lead) plus workers of one pool
// (pool.cpp) that sleep when idle. No OpenMP team, so no runtime spins on the
// cores after a call, whichever library loaded the runtime first.
//
// `parallel_for` hands out chunks of an index range from one atomic counter:
// a thread the OS deschedules holds one chunk while the others take the rest.
//
// A loop of picks (the head loop, chained streaming steps) needs each pick's
// result before the next pass. `pick_loop` makes that wait short and never
// dependent on another thread being scheduled: the pass is cut into chunks
// that threads claim from one atomic counter; the lead claims chunks too, and
// once none is left it does itself any chunk a helper claimed but has not
// finished. A helper that the OS descheduled therefore costs at most one chunk
// of duplicated work, never a time slice. A late helper may still finish an
// old pass: chunks write their values only through `lower_to` (an atomic
// min), and every value only decreases, so an old fold can never raise a
// value that a newer one lowered.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace hminsel {

// Below this many row elements a pass is not worth waking the pool
// (~10-30 us of work; waking a sleeping worker costs a few us).
constexpr int64_t kMinParallelWork = 1 << 16;

// Threads a kernel may use, the lead included (set_threads from Python).
inline std::atomic<int>& thread_setting() {
  static std::atomic<int> n{std::max(1, static_cast<int>(std::thread::hardware_concurrency()))};
  return n;
}

inline int max_threads() { return thread_setting().load(std::memory_order_relaxed); }

inline void set_threads(int n) { thread_setting().store(n < 1 ? 1 : n, std::memory_order_relaxed); }

// Runs body(0) on the calling thread and body(1 .. threads - 1) on pool
// workers that are free to start it before body(0) returns; returns when
// every worker that started has left. A worker never scheduled in time just
// skips the job, so body must share out its work (claims from a counter) and
// not count on any id other than 0 running. While another caller's job holds
// the pool, body(0) runs alone.
void pool_run(int threads, const std::function<void(int)>& body);

// Relaxed atomic access to a value array that a late helper may still touch.
template <typename T>
inline T load_relaxed(const T* p) {
  T v;
  __atomic_load(p, &v, __ATOMIC_RELAXED);
  return v;
}

// *p = min(*p, v) atomically; returns the new *p. Values >= 0 or MARK, never NaN.
template <typename T>
inline T lower_to(T* p, T v) {
  T cur = load_relaxed(p);
  while (v < cur && !__atomic_compare_exchange(p, &cur, &v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return v < cur ? v : cur;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Pick loop over `chunks` chunks a pass, passes numbered 1, 2, ...:
//   fold(c, pass) -> int64_t  work on chunk c for this pass; the result must be
//                             the same whoever computes it, and fit in 31 bits
//                             (-1 allowed), e.g. the chunk's best row offset;
//   next(pass, results) -> bool  the lead only, after every chunk of the pass:
//                             reads results[0 .. chunks), publishes whatever the
//                             next pass needs (written before it starts), and
//                             says whether to run another pass.
// `threads` threads at most (the lead included); a waiting helper spins about
// kSpinMicros, then sleeps in short naps, so idle helpers leave the cores.
constexpr int kSpinMicros = 50;
constexpr int kNapMicros = 50;

template <class Fold, class Next>
void pick_loop(int64_t chunks, int threads, Fold&& fold, Next&& next) {
  std::vector<int64_t> results(chunks);
  if (threads <= 1 || chunks <= 1) {
    for (uint64_t pass = 1;; ++pass) {
      for (int64_t c = 0; c < chunks; ++c) results[c] = fold(c, pass);
      if (!next(pass, results.data())) return;
    }
  }
  constexpr uint64_t kLow = 0xFFFFFFFFull, kStop = kLow;  // pass kStop: helpers leave
  auto pack = [](uint64_t pass, uint64_t low) { return (pass << 32) | (low & kLow); };
  std::atomic<uint64_t> claim{pack(1, 0)};  // (pass << 32) | next chunk to claim
  std::vector<std::atomic<uint64_t>> done(chunks);  // (pass << 32) | (result + 1)
  for (auto& s : done) s.store(0, std::memory_order_relaxed);
  auto record = [&](int64_t c, uint64_t pass, int64_t r) {
    const uint64_t want = pack(pass, static_cast<uint64_t>(r + 1));
    uint64_t cur = done[c].load(std::memory_order_relaxed);
    while ((cur >> 32) < pass &&
           !done[c].compare_exchange_weak(cur, want, std::memory_order_release, std::memory_order_relaxed)) {
    }
  };
  pool_run(threads, [&](int id) {
    if (id == 0) {
      using Clock = std::chrono::steady_clock;
      Clock::duration chunk_time{0};  // the lead's latest chunk
      for (uint64_t pass = 1;; ++pass) {
        while (true) {  // claim chunks like any helper
          const uint64_t s = claim.fetch_add(1, std::memory_order_acq_rel);
          const int64_t c = static_cast<int64_t>(s & kLow);
          if (c >= chunks) break;
          const auto t0 = Clock::now();
          results[c] = fold(c, pass);
          record(c, pass, results[c]);
          chunk_time = Clock::now() - t0;
        }
        for (int64_t c = 0; c < chunks; ++c) {
          // A helper's chunk: wait about two chunks' time (a running helper
          // is done by then), else take it over (a descheduled one is not).
          uint64_t s = done[c].load(std::memory_order_acquire);
          if ((s >> 32) != pass) {
            const auto until = Clock::now() + 2 * chunk_time;
            for (int polls = 1; (s >> 32) != pass; ++polls) {
              cpu_relax();
              s = done[c].load(std::memory_order_acquire);
              if (polls % 16 == 0 && Clock::now() > until) break;
            }
          }
          results[c] = (s >> 32) == pass ? static_cast<int64_t>(s & kLow) - 1 : fold(c, pass);
        }
        const bool more = next(pass, results.data()) && pass + 1 < kStop;
        claim.store(pack(more ? pass + 1 : kStop, 0), std::memory_order_release);
        if (!more) break;
      }
    } else {
      auto idle_since = std::chrono::steady_clock::now();
      int polls = 0;
      while (true) {
        uint64_t s = claim.load(std::memory_order_acquire);
        if ((s >> 32) == kStop) break;
        if (static_cast<int64_t>(s & kLow) < chunks) {
          s = claim.fetch_add(1, std::memory_order_acq_rel);
          const uint64_t pass = s >> 32;
          const int64_t c = static_cast<int64_t>(s & kLow);
          if (pass == kStop) break;
          if (c < chunks) {
            record(c, pass, fold(c, pass));
            idle_since = std::chrono::steady_clock::now();
            polls = 0;
          }
          continue;
        }
        cpu_relax();
        if (++polls % 64 == 0) {
          const auto now = std::chrono::steady_clock::now();
          if (now - idle_since > std::chrono::microseconds(kSpinMicros))
            std::this_thread::sleep_for(std::chrono::microseconds(kNapMicros));
        }
      }
    }
  });
}

// fn(lo, hi) on chunks [lo, hi) of [0, n), `grain` indices a chunk, on up to
// max_threads() threads (one when n * work_per_index < kMinParallelWork).
// Chunks run in any order on any thread: fn must not depend on either.
template <class Fn>
void parallel_for(int64_t n, int64_t grain, int64_t work_per_index, Fn&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  const int threads = n * work_per_index >= kMinParallelWork
                          ? static_cast<int>(std::min<int64_t>(max_threads(), chunks)) : 1;
  if (threads <= 1) {
    fn(int64_t(0), n);
    return;
  }
  std::atomic<int64_t> next{0};
  pool_run(threads, [&](int) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed))
      fn(c * grain, std::min(n, (c + 1) * grain));
  });
}

}  // namespace hminsel
