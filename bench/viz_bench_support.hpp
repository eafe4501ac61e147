// What the visualizer's benchmarks share: the synthetic trace of a run
// they open (1,000,000 events in the mix of the runs vmlab makes, written by
// the recorder's own writer), the process's resident size, and how they
// write their figures.
//
// The mix: a full-mode syscall loop (each monitor trap inside the VM exit of
// its stub), bt call-outs with translations nested in them, hvm-style exits
// to the UART and the debug console, shadow fills, and timer sleeps (the hlt
// exit, the wait inside it, the interrupt that ends it).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vmlab/events.hpp"

namespace vmlab::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// "67.917 s", "530.599 ms", "1.036 us" for a window's length.
inline std::string duration_text(std::uint64_t nanoseconds) {
  char text[32];
  const double value = static_cast<double>(nanoseconds);
  if (nanoseconds >= 1'000'000'000) {
    std::snprintf(text, sizeof text, "%.3f s", value / 1e9);
  } else if (nanoseconds >= 1'000'000) {
    std::snprintf(text, sizeof text, "%.3f ms", value / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%.3f us", value / 1e3);
  }
  return text;
}

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

// Records the synthetic run into `recorder`, exactly `events` events.
inline void record_run(EventRecorder& recorder, std::size_t events) {
  std::mt19937_64 random(20261202);
  auto between = [&](std::uint64_t low, std::uint64_t high) {
    return std::uniform_int_distribution<std::uint64_t>(low, high)(random);
  };
  struct Cause {
    EventReason reason;
    PrivilegeLevel from, to;
    const char* detail;
    std::uint64_t vector;
  };
  using enum PrivilegeLevel;
  const Cause causes[] = {
      {EventReason::SystemCall, GuestUser, GuestKernel, "syscall", 0},
      {EventReason::PrivilegedInstruction, GuestKernel, GuestUser, "iretq", 0xb},
      {EventReason::PrivilegedInstruction, GuestKernel, GuestKernel, "out dx, al", 0xd},
      {EventReason::PrivilegedInstruction, GuestKernel, GuestKernel, "in al, dx", 0xd},
      {EventReason::CallOut, GuestKernel, GuestKernel, "out dx, al", 0xd},
  };
  std::uint64_t time = 50'000;
  PrivilegeLevel level = GuestUser;
  auto exit = [&](std::uint64_t start, std::uint64_t duration, EventReason reason,
                  PrivilegeLevel from, std::uint64_t port, std::uint64_t rip) {
    recorder.record({.time_ns = start,
                     .duration_ns = duration,
                     .guest_rip = rip,
                     .address = port,
                     .size = 1,
                     .kind = EventKind::VmExit,
                     .reason = reason,
                     .from = from,
                     .to = PrivilegeLevel::Vmm});
    recorder.add_time(from, start > time ? start - time : 0);
    time = start + duration;
  };
  while (recorder.recorded() < events) {
    const std::size_t left = events - static_cast<std::size_t>(recorder.recorded());
    const std::uint64_t start = time + between(2'000, 40'000);  // the guest runs
    const std::uint64_t kernel_rip = 0x100000 + 16 * between(0, 4095);
    const unsigned scenario = left < 3 ? 99u : static_cast<unsigned>(between(0, 99));
    if (scenario < 50) {
      // full: a trap, inside the VM exit of the stub that took it.
      const Cause& cause = causes[between(0, 3)];
      const std::uint64_t duration = between(800, 5'000);
      const std::uint64_t offset = between(200, 500);
      recorder.record({.time_ns = start + offset,
                       .duration_ns = between(100, duration - offset),
                       .guest_rip = cause.from == GuestUser ? 0x4002a8 : kernel_rip,
                       .address = cause.vector,
                       .value = kernel_rip,
                       .detail = recorder.intern(cause.detail),
                       .size = 1,
                       .kind = EventKind::MonitorTrap,
                       .reason = cause.reason,
                       .from = cause.from,
                       .to = cause.to});
      exit(start, duration, EventReason::IoOut, cause.from, 0xe8,
           0xffffff8000003000 + 8 * between(0, 15));
      level = cause.to;
    } else if (scenario < 60) {
      // bt: a call-out, a block translated while the monitor handles it.
      const std::uint64_t duration = between(2'000, 12'000);
      recorder.record({.time_ns = start + 300,
                       .duration_ns = duration - 600,
                       .guest_rip = kernel_rip,
                       .address = 0xd,
                       .detail = recorder.intern(causes[4].detail),
                       .size = 1,
                       .kind = EventKind::MonitorTrap,
                       .reason = EventReason::CallOut,
                       .from = GuestKernel,
                       .to = GuestKernel});
      recorder.record({.time_ns = start + 500,
                       .duration_ns = between(50, 300),
                       .guest_rip = kernel_rip + 0x40,
                       .address = kernel_rip + 0x40,
                       .size = 4,
                       .kind = EventKind::Translation,
                       .reason = EventReason::BlockTranslated,
                       .from = GuestKernel,
                       .to = GuestKernel});
      exit(start, duration, EventReason::IoOut, GuestKernel, 0xe8, 0xffffff800000301a);
      level = GuestKernel;
    } else if (scenario < 67) {
      // A shadow page-table fill: the longest traps.
      const std::uint64_t duration = between(20'000, 45'000);
      recorder.record({.time_ns = start + 400,
                       .duration_ns = duration - 900,
                       .guest_rip = kernel_rip,
                       .address = 0xe,
                       .detail = recorder.intern("#PF: shadow entry filled"),
                       .size = 1,
                       .kind = EventKind::MonitorTrap,
                       .reason = EventReason::ShadowFill,
                       .from = level,
                       .to = level});
      exit(start, duration, EventReason::IoOut, level, 0xe8, 0xffffff8000003072);
    } else if (scenario < 72) {
      // The timer: hlt, the wait inside the exit, the interrupt after it.
      const std::uint64_t wait = between(50'000, 4'000'000);
      recorder.record({.time_ns = start + 1'000,
                       .duration_ns = wait,
                       .kind = EventKind::GuestHalt,
                       .reason = EventReason::Halt,
                       .from = GuestKernel,
                       .to = PrivilegeLevel::Vmm});
      recorder.add_halted_time(wait);
      exit(start, wait + 2'000, EventReason::Halt, GuestKernel, 0, 0x101020);
      recorder.record({.time_ns = time + 200,
                       .address = 0x20,
                       .kind = EventKind::InterruptInjection,
                       .reason = EventReason::ExternalInterrupt,
                       .from = PrivilegeLevel::Vmm,
                       .to = GuestKernel});
      level = GuestKernel;
    } else {
      // hvm: the console's port writes reach the VMM.
      exit(start, between(500, 3'000), EventReason::IoOut, GuestKernel,
           between(0, 3) == 0 ? 0xe9 : 0x3f8, kernel_rip);
      level = GuestKernel;
    }
  }
}

// Writes the synthetic run of `events` events to `path`; false if it could not.
inline bool write_synthetic_trace(const std::filesystem::path& path, std::size_t events) {
  EventRecorder recorder(events);
  record_run(recorder, events);
  std::ofstream file(path);
  write_trace(file, recorder, "platform: synthetic", "cpu=mix workload=synthetic");
  return static_cast<bool>(file.flush());
}

// The process's resident set, in bytes (/proc/self/statm).
inline std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace vmlab::bench
