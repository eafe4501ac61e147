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

// A refused workload's exit status (WorkloadScope, runner.hpp).
inline constexpr std::uint32_t kRefusedExitStatus = 2;

// Every workload of the built-in guest that runs without a disk, sized for a
// test, with the exit status it ends with where it runs: what each CPU mode
// must run with the same result line as hvm.
struct WorkloadCase {
  const char* workload;
  std::uint64_t count;
  std::uint32_t exit_status;
};

inline bool runs_under(const WorkloadCase& workload, const std::string& cpu) {
  return workload_runs_under(workload.workload, cpu);
}

inline std::uint32_t expected_exit_status(const WorkloadCase& workload, const std::string& cpu) {
  return runs_under(workload, cpu) ? workload.exit_status : kRefusedExitStatus;
}

// What the guest's refusal says, on the console, for a workload that cannot
// run under a CPU mode: the --cpu values it needs.
inline std::string refusal_names(const WorkloadCase& workload) {
  return find_workload(workload.workload)->scope == WorkloadScope::ParaOnly
             ? "needs --cpu para"
             : "--cpu hvm, full or bt";
}

inline constexpr std::array<WorkloadCase, 21> kEveryWorkload = {{
    {"hello", 1, 0},
    {"syscalls", 100, 0},
    {"pagefaults", 40, 0},
    {"compute", 100000, 0},
    {"kernel-compute", 100000, 0},
    {"kernel-smc", 50, 0},
    {"cli-sti", 100, 0},
    {"pio", 100, 0},
    {"pio-out", 100, 0},
    {"cr8-write", 100, 0},
    {"call-ret", 100000, 0},
    {"divide-error", 50, 0},
    {"pte-update", 50, 0},
    {"page-fault", 50, 0},
    {"pte-write", 50, 0},
    {"hypercall", 100, 0},
    {"timer", 3, 0},
    {"interrupts", 5, 0},
    {"rtc", 3, 0},
    {"fault", 1, 3},
    {"segfault", 1, 4},
}};

// A run of `workload` under CPU mode `cpu` against the same under hvm: each
// exited with the status the workload ends with there; where both ran it
// (or neither did), the run printed hvm's result line, cycles aside. Where
// only one of them could, that one ended ok and the other refused: status
// error, the same workload and n, and a console line (`console`, or
// `hvm_console` for hvm's run) naming the CPU modes the workload needs.
inline ::testing::AssertionResult matches_hvm(const GuestRun& run, const GuestRun& hvm,
                                              const WorkloadCase& workload, const std::string& cpu,
                                              const std::string& console = "",
                                              const std::string& hvm_console = "") {
  for (const auto* each : {&run, &hvm}) {
    const std::string& mode = each == &run ? cpu : std::string("hvm");
    if (each->report.outcome != RunOutcome::GuestExited) {
      return ::testing::AssertionFailure()
             << "the guest did not exit under " << mode << ": " << each->report.message << "\n"
             << each->report.registers;
    }
    if (each->report.exit_value != expected_exit_status(workload, mode)) {
      return ::testing::AssertionFailure()
             << "exit status " << each->report.exit_value << " under " << mode << ", not "
             << expected_exit_status(workload, mode);
    }
    if (!each->result) return ::testing::AssertionFailure() << "no result line under " << mode;
  }
  if (runs_under(workload, cpu) == runs_under(workload, "hvm")) {
    if (without_cycles(run.result->line) != without_cycles(hvm.result->line)) {
      return ::testing::AssertionFailure() << run.result->line << "\nunder hvm:\n"
                                           << hvm.result->line;
    }
    return ::testing::AssertionSuccess();
  }
  const bool hvm_refused = runs_under(workload, cpu);
  const GuestRun& ran = hvm_refused ? run : hvm;
  const GuestRun& refused = hvm_refused ? hvm : run;
  const std::string& refusal = hvm_refused ? hvm_console : console;
  if (ran.result->field("status") != "ok") {
    return ::testing::AssertionFailure() << "where it runs: " << ran.result->line;
  }
  if (refused.result->field("status") != "error" ||
      refused.result->field("workload") != ran.result->field("workload") ||
      refused.result->field("n") != ran.result->field("n")) {
    return ::testing::AssertionFailure() << "where it cannot run: " << refused.result->line;
  }
  if (refusal.find(refusal_names(workload)) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "the refusal does not say '" << refusal_names(workload) << "':\n"
           << refusal;
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
    run = run_capturing(kCpu, console);
    hvm = run_capturing("hvm", hvm_console);
    ASSERT_TRUE(matches_hvm(run, hvm, GetParam(), kCpu, console, hvm_console));
  }

  // Whether the parameter's workload ran under kCpu (or was refused there).
  bool ran() const { return runs_under(GetParam(), kCpu); }

  GuestRun run;  // under kCpu
  GuestRun hvm;
  std::string console;  // the UART's text under kCpu
  std::string hvm_console;

 private:
  GuestRun run_capturing(const std::string& cpu, std::string& text) {
    auto options = workload_options(cpu, GetParam().workload, GetParam().count);
    options.console_output = [&text](std::uint8_t byte) {
      text.push_back(static_cast<char>(byte));
    };
    return start_run(options);
  }
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
  } else if (workload == "divide-error") {
    EXPECT_GE(count_of(run.traps_by_reason, "reflected-exception"), n)
        << "each #DE is reflected into the guest kernel";
  } else if (workload == "pte-update") {
    EXPECT_GE(count_of(run.traps_by_reason, "page-table-write"), n)
        << "each update writes a write-protected page table (ptemod)";
  } else if (workload == "interrupts") {
    // The N measured ticks and the one that stops the timer.
    EXPECT_GE(run.interrupts_injected, n + 1) << "the monitor injects every tick the guest counts";
    ASSERT_TRUE(run.result.has_value());
    EXPECT_EQ(run.result->number("irqs"), n + 1);
  }
}

// "cli-sti" -> "cli_sti": a test name may not contain '-'.
inline std::string workload_case_name(const ::testing::TestParamInfo<WorkloadCase>& info) {
  std::string name = info.param.workload;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace vmlab::testing
