// The monitor region (monitor_region.hpp) as a mode that runs the guest
// kernel deprivileged owns it (DESIGN.md 4): host memory for all of it, its
// static part mapped into the VM, one guest-physical map of guest RAM and the
// region for the monitor's own accesses, and the check that the guest never
// changed what the monitor relies on.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vmlab/cpu_mode.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/monitor/monitor_region.hpp"
#include "vmlab/physical_memory.hpp"
#include "vmlab/result.hpp"

namespace vmlab::monitor {

// Everything below the shadow pool: GDT, IDT, TSS, stubs, stacks, and the
// pages above the stacks a mode may use for tables of its own (para does).
constexpr std::uint64_t kStaticPartSize = kShadowPoolOffset;

class MonitorRegionMemory {
 public:
  MonitorRegionMemory() = default;
  // physical() points into the object: it stays where it was created.
  MonitorRegionMemory(const MonitorRegionMemory&) = delete;
  MonitorRegionMemory& operator=(const MonitorRegionMemory&) = delete;

  // Creates the region's memory, maps its static part into the VM (memory
  // slot MonitorRegion), maps guest RAM and the region into physical(), and
  // writes the GDT, IDT, TSS and stubs.
  Status create(ModeContext& context);
  // prepare() has written all it writes into the static part: this copy is
  // what integrity_violation() compares with.
  Status seal();
  // What changed in the static part since seal(), outside the bytes the
  // monitor changes itself (the stacks, the TSS busy bit, and `also_owned`,
  // as offsets into the region): a description, or nullopt (also before
  // seal()).
  std::optional<std::string> integrity_violation(
      std::span<const std::uint64_t> also_owned = {}) const;

  PhysicalMemoryMap& physical() { return m_physical; }
  const PhysicalMemoryMap& physical() const { return m_physical; }
  // The region alone, addressed by offset (for its host mapping).
  GuestMemory& region() { return *m_region; }

 private:
  std::optional<GuestMemory> m_region;
  PhysicalMemoryMap m_physical;          // guest RAM at 0, the region at kMonitorPhysicalBase
  std::vector<std::uint8_t> m_pristine;  // the static part as seal() found it
};

}  // namespace vmlab::monitor
