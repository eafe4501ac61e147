// The machine both para-mode suites run: 8 MiB of guest RAM, the monitor
// region where vmlab puts it with the supervisor-only PML4 entry the
// validator pins into every root, the page-table entry bits by short names,
// and the real page-table validator over that memory.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>

#include "../monitor/entry_bits.hpp"
#include "vector_guest_memory.hpp"
#include "vmlab/address.hpp"
#include "vmlab/para/page_table_validator.hpp"

namespace vmlab::para::testing {

using namespace monitor::testing;  // NOLINT(google-build-using-namespace): the entry bits

constexpr std::uint64_t kRamSize = 8 * MiB;
constexpr std::uint64_t kMonitorBase = 0xd0000000;
constexpr std::uint64_t kMonitorSize = 8 * MiB;
// Supervisor-only, pointing at the monitor's PDPT in its region.
constexpr std::uint64_t kMonitorEntry = (kMonitorBase + kPageSize) | kP | kW;

// RAM and the monitor region, no device windows.
inline PageTableValidatorConfig base_config(std::uint64_t ram_size = kRamSize) {
  PageTableValidatorConfig config;
  config.guest_ram_size = ram_size;
  config.monitor = {GuestPhysAddr(kMonitorBase), kMonitorSize};
  config.monitor_pml4_entry = kMonitorEntry;
  return config;
}

inline PageTableValidator make_validator(GuestMemoryAccess& memory,
                                         PageTableValidatorConfig config = base_config()) {
  auto validator = PageTableValidator::create(memory, std::move(config));
  if (!validator) ADD_FAILURE() << validator.error().message;
  return std::move(*validator);  // throws, failing the test, if create() failed
}

}  // namespace vmlab::para::testing
