// Result lines compared across runs and machines: everything but the cycle
// count must agree (the guest's own rdtsc differs run to run).
#pragma once

#include <regex>
#include <string>

namespace vmlab::testing {

inline std::string without_cycles(const std::string& line) {
  return std::regex_replace(line, std::regex(" cycles=[0-9]+"), "");
}

}  // namespace vmlab::testing
