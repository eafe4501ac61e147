// Page-table entry bits (Intel SDM vol. 3A, 4.5, tables 4-14 to 4-20) by the
// short names the monitor's and the modes' tests write entries with.
#pragma once

#include <cstdint>

#include "vmlab/x86.hpp"

namespace vmlab::monitor::testing {

constexpr std::uint64_t kP = page_entry::kPresent;
constexpr std::uint64_t kW = page_entry::kWritable;
constexpr std::uint64_t kU = page_entry::kUser;
constexpr std::uint64_t kA = page_entry::kAccessed;
constexpr std::uint64_t kD = page_entry::kDirty;
constexpr std::uint64_t kPs = page_entry::kLargePage;  // PAT in a PTE
constexpr std::uint64_t kXd = page_entry::kExecuteDisable;
constexpr std::uint64_t kTableFlags = kP | kW | kU;

}  // namespace vmlab::monitor::testing
