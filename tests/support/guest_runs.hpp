// One built-in guest run for an end-to-end test, failing the test (not
// crashing it) when the run cannot even start.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>

#include "kvm_available.hpp"
#include "result_lines.hpp"
#include "vmlab/runner.hpp"

namespace vmlab::testing {

// A built-in workload under `cpu`, with a timeout a loaded test host meets.
inline RunOptions workload_options(const std::string& cpu, const std::string& workload,
                                   std::uint64_t count,
                                   const std::string& extra_command_line = "") {
  RunOptions options;
  options.cpu = cpu;
  options.workload = workload;
  options.count = count;
  options.timeout_seconds = 120;
  options.extra_command_line = extra_command_line;
  return options;
}

// The run, or an empty one (and a failed test) when it cannot start.
inline GuestRun start_run(const RunOptions& options) {
  auto run = run_guest(options);
  EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message);
  return run.ok() ? std::move(*run) : GuestRun{};
}

inline GuestRun run_in(const std::string& cpu, const std::string& workload, std::uint64_t count,
                       const std::string& extra_command_line = "") {
  return start_run(workload_options(cpu, workload, count, extra_command_line));
}

// A run refused before it starts, with a message that names each of `what`
// (the option at fault, the fix).
inline ::testing::AssertionResult refused_naming(const RunOptions& options,
                                                 std::initializer_list<std::string> what) {
  auto run = run_guest(options);
  if (run.ok()) return ::testing::AssertionFailure() << "the run was not refused";
  for (const auto& words : what) {
    if (run.error().message.find(words) == std::string::npos) {
      return ::testing::AssertionFailure() << "no '" << words << "' in: " << run.error().message;
    }
  }
  return ::testing::AssertionSuccess();
}

// A count from GuestRun's by-reason maps, 0 when the reason never occurred.
inline std::uint64_t count_of(const std::map<std::string, std::uint64_t>& counts,
                              const std::string& reason) {
  auto found = counts.find(reason);
  return found == counts.end() ? 0 : found->second;
}

// Every workload of the built-in guest that runs without a disk, sized for a
// test, with the exit status it ends with: what each CPU mode must run with
// the same result line as hvm.
struct WorkloadCase {
  const char* workload;
  std::uint64_t count;
  std::uint32_t exit_status;
};

inline constexpr std::array<WorkloadCase, 12> kEveryWorkload = {{
    {"hello", 1, 0},
    {"syscalls", 100, 0},
    {"pagefaults", 40, 0},
    {"compute", 100000, 0},
    {"kernel-compute", 100000, 0},
    {"kernel-smc", 50, 0},
    {"cli-sti", 100, 0},
    {"pio", 100, 0},
    {"timer", 3, 0},
    {"rtc", 3, 0},
    {"fault", 1, 3},
    {"segfault", 1, 4},
}};

// A run of `workload` under a CPU mode against the same under hvm: the guest
// exited with the workload's status and printed hvm's result line, cycles
// aside.
inline ::testing::AssertionResult matches_hvm(const GuestRun& run, const GuestRun& hvm,
                                              const WorkloadCase& workload) {
  if (run.report.outcome != RunOutcome::GuestExited) {
    return ::testing::AssertionFailure() << "the guest did not exit: " << run.report.message << "\n"
                                         << run.report.registers;
  }
  if (run.report.exit_value != workload.exit_status) {
    return ::testing::AssertionFailure()
           << "exit status " << run.report.exit_value << ", not " << workload.exit_status;
  }
  if (!run.result || !hvm.result) return ::testing::AssertionFailure() << "no result line";
  if (without_cycles(run.result->line) != without_cycles(hvm.result->line)) {
    return ::testing::AssertionFailure() << run.result->line << "\nunder hvm:\n"
                                         << hvm.result->line;
  }
  return ::testing::AssertionSuccess();
}

// CPU mode `kCpu` against hvm over kEveryWorkload: SetUp runs the
// parameter's workload under both and requires the same result
// (matches_hvm); the test then checks what only the mode's `run` shows (its
// traps, its hypercalls).
template <const char* kCpu>
class SameResultAsHvm : public ::testing::TestWithParam<WorkloadCase> {
 protected:
  void SetUp() override {
    VMLAB_REQUIRE_KVM();
    run = run_in(kCpu, GetParam().workload, GetParam().count);
    hvm = run_in("hvm", GetParam().workload, GetParam().count);
    ASSERT_TRUE(matches_hvm(run, hvm, GetParam()));
  }

  GuestRun run;  // under kCpu
  GuestRun hvm;
};

// What every technique with a monitor (full, bt) must show for a workload,
// whatever it does with the kernel's instructions: each user system call and
// each demand fault passes the monitor, every tick the guest counts was
// injected, and the kernel's arithmetic loop leaves the VM for none of its
// rounds.
inline void expect_monitor_sees_workload(const GuestRun& run, const std::string& workload,
                                         std::uint64_t n) {
  if (workload == "syscalls") {
    EXPECT_GE(count_of(run.traps_by_reason, "system-call"), n)
        << "each user syscall enters the monitor";
  } else if (workload == "pagefaults") {
    EXPECT_GE(count_of(run.traps_by_reason, "guest-page-fault"), n)
        << "each demand fault is reflected";
  } else if (workload == "timer") {
    EXPECT_GE(run.interrupts_injected, n) << "the monitor injects every tick the guest counts";
    ASSERT_TRUE(run.result.has_value());
    EXPECT_EQ(run.result->number("irqs"), n);
  } else if (workload == "kernel-compute") {
    // The boot's traps, the sti and cli around the loop, but none per round.
    EXPECT_LT(run.monitor_traps, n / 10) << "kernel arithmetic runs at CPL3 without traps";
  }
}

// "cli-sti" -> "cli_sti": a test name may not contain '-'.
inline std::string workload_case_name(const ::testing::TestParamInfo<WorkloadCase>& info) {
  std::string name = info.param.workload;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace vmlab::testing
