// The monitor region in plain memory, mapped where the monitor expects it in
// guest-physical space: what the monitor's tests use instead of a VM.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <utility>

#include "vmlab/guest_memory.hpp"
#include "vmlab/monitor/monitor_region.hpp"
#include "vmlab/physical_memory.hpp"

namespace vmlab::monitor::testing {

class MonitorMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto region = GuestMemory::create(kMonitorSize);
    ASSERT_TRUE(region.ok());
    m_region.emplace(std::move(*region));
    ASSERT_TRUE(m_physical.add(GuestPhysAddr(kMonitorPhysicalBase), *m_region).ok());
  }

  std::optional<GuestMemory> m_region;  // the region alone, offsets from 0
  PhysicalMemoryMap m_physical;         // the region at kMonitorPhysicalBase
};

}  // namespace vmlab::monitor::testing
