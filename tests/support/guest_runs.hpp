// One built-in guest run for an end-to-end test, failing the test (not
// crashing it) when the run cannot even start.
#pragma once

#include <gtest/gtest.h>

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

}  // namespace vmlab::testing
