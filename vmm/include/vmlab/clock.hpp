// Time sources for device models and the run loop, so tests can drive timers
// and time limits with a clock of their own.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace vmlab {

class Clock {
 public:
  virtual ~Clock() = default;
  // Nanoseconds since an arbitrary, fixed origin; never decreases.
  virtual std::uint64_t now_ns() const = 0;
};

class MonotonicClock final : public Clock {
 public:
  std::uint64_t now_ns() const override {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }
};

class FakeClock final : public Clock {
 public:
  std::uint64_t now_ns() const override { return m_now; }
  void advance_ns(std::uint64_t delta) { m_now += delta; }
  void set_ns(std::uint64_t now) { m_now = now; }

 private:
  std::uint64_t m_now = 0;
};

// The clock a VM run is timed and limited by (run_loop.hpp).
class RunClock : public Clock {
 public:
  // Blocks until `finished()` holds or the clock reads `deadline_ns` or
  // later, and returns finished(). finished() is checked again after every
  // wake_waiters().
  virtual bool wait_until(std::uint64_t deadline_ns, const std::function<bool()>& finished) = 0;
  virtual void wake_waiters() = 0;
};

// std::chrono::steady_clock, as MonotonicClock reads it.
class SteadyRunClock final : public RunClock {
 public:
  std::uint64_t now_ns() const override { return m_clock.now_ns(); }
  bool wait_until(std::uint64_t deadline_ns, const std::function<bool()>& finished) override {
    const std::chrono::steady_clock::time_point deadline(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::nanoseconds(deadline_ns)));
    std::unique_lock lock(m_lock);
    return m_wakeup.wait_until(lock, deadline, finished);
  }
  void wake_waiters() override {
    // Taking the lock orders what finished() reads before a waiter's check.
    { std::lock_guard lock(m_lock); }
    m_wakeup.notify_all();
  }

 private:
  MonotonicClock m_clock;
  std::mutex m_lock;
  std::condition_variable m_wakeup;
};

}  // namespace vmlab
