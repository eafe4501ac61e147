// Result lines compared across runs and machines: everything but the cycle
// count must agree (the guest's own rdtsc differs run to run).
#pragma once

#include <string>

#include "vmlab/runner.hpp"

namespace vmlab::testing {

inline std::string without_cycles(const std::string& line) {
  return comparable_result_line(line);
}

}  // namespace vmlab::testing
