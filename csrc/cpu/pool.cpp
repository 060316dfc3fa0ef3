// The worker threads behind pool_run (parallel.h).
//
// Workers are started on first use and live for the process. An idle worker
// spins about kSpinMicros on the job counter, then blocks on a condition
// variable: no OpenMP runtime, so nothing spins for milliseconds after a call
// whatever library loaded the runtime first. A job is open until its lead
// closes it: a worker that wakes after that skips it, so the lead never waits
// for a thread to be scheduled, only for the workers already inside its body.
#include <condition_variable>
#include <functional>
#include <mutex>

#include <pthread.h>

#include "parallel.h"

namespace hminsel {
namespace {

constexpr uint32_t kClosed = 1u << 31;

struct Job {
  const std::function<void(int)>* body = nullptr;
  int wanted = 0;                  // workers that may join (ids 1 .. wanted)
  std::atomic<uint32_t> state{0};  // workers inside | kClosed
  std::atomic<int> next_id{1};
};

class Pool {
 public:
  void run(int threads, const std::function<void(int)>& body) {
    std::unique_lock<std::mutex> own(run_lock_, std::try_to_lock);
    if (threads <= 1 || !own.owns_lock()) {  // busy with another caller's job: run alone
      body(0);
      return;
    }
    grow(threads - 1);
    Job job;
    job.body = &body;
    job.wanted = threads - 1;
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &job;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    body(0);
    {
      std::lock_guard<std::mutex> lk(m_);  // no worker can pick the job up from here on
      job_ = nullptr;
    }
    job.state.fetch_or(kClosed, std::memory_order_acq_rel);
    for (int spins = 0; (job.state.load(std::memory_order_acquire) & ~kClosed) != 0; ++spins) {
      if (spins < 2048) cpu_relax();
      else std::this_thread::yield();
    }
  }

 private:
  void grow(int n) {
    std::lock_guard<std::mutex> lk(m_);
    while (static_cast<int>(workers_.size()) < n) {
      workers_.emplace_back([this] { loop(); });
      workers_.back().detach();  // lives for the process
    }
  }

  void loop() {
    uint64_t seen = gen_.load(std::memory_order_acquire);
    while (true) {
      const auto t0 = std::chrono::steady_clock::now();
      int polls = 0;
      while (gen_.load(std::memory_order_acquire) == seen) {
        cpu_relax();
        if (++polls % 64 == 0 &&
            std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(kSpinMicros)) {
          std::unique_lock<std::mutex> lk(m_);
          cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
          break;
        }
      }
      Job* job;
      {
        std::lock_guard<std::mutex> lk(m_);
        seen = gen_.load(std::memory_order_acquire);
        job = job_;
        if (job) {  // enter while the job is open: the lead then waits for us to leave
          uint32_t s = job->state.load(std::memory_order_acquire);
          while (!(s & kClosed) && !job->state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
          }
          if (s & kClosed) job = nullptr;
        }
      }
      if (!job) continue;
      const int id = job->next_id.fetch_add(1, std::memory_order_relaxed);
      if (id <= job->wanted) (*job->body)(id);
      job->state.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::mutex run_lock_, m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  Job* job_ = nullptr;
  std::vector<std::thread> workers_;
};

// Never destroyed: workers outlive static destructors. A forked child has
// none of the workers and maybe a lock taken by one: it starts a new pool.
std::atomic<Pool*> the_pool{nullptr};

void new_pool_in_child() { the_pool.store(new Pool()); }

}  // namespace

void pool_run(int threads, const std::function<void(int)>& body) {
  static const bool ready = [] {
    the_pool.store(new Pool());
    pthread_atfork(nullptr, nullptr, new_pool_in_child);
    return true;
  }();
  (void)ready;
  the_pool.load()->run(threads, body);
}

}  // namespace hminsel
