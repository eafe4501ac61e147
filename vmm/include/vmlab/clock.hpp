// Time source for device models, so tests can drive timers with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>

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

}  // namespace vmlab
