// One built-in guest run for an end-to-end test, failing the test (not
// crashing it) when the run cannot even start.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "vmlab/runner.hpp"

namespace vmlab::testing {

inline GuestRun run_in(const std::string& cpu, const std::string& workload, std::uint64_t count,
                       const std::string& extra_command_line = "") {
  RunOptions options;
  options.cpu = cpu;
  options.workload = workload;
  options.count = count;
  options.timeout_seconds = 120;
  options.extra_command_line = extra_command_line;
  auto run = run_guest(options);
  EXPECT_TRUE(run.ok()) << (run.ok() ? "" : run.error().message);
  return run.ok() ? std::move(*run) : GuestRun{};
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

inline constexpr std::array<WorkloadCase, 10> kEveryWorkload = {{
    {"hello", 1, 0},
    {"syscalls", 100, 0},
    {"pagefaults", 40, 0},
    {"compute", 100000, 0},
    {"cli-sti", 100, 0},
    {"pio", 100, 0},
    {"timer", 3, 0},
    {"rtc", 3, 0},
    {"fault", 1, 3},
    {"segfault", 1, 4},
}};

// "cli-sti" -> "cli_sti": a test name may not contain '-'.
inline std::string workload_case_name(const ::testing::TestParamInfo<WorkloadCase>& info) {
  std::string name = info.param.workload;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace vmlab::testing
