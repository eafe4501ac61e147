#include "vmlab/monitor/region_memory.hpp"

#include <algorithm>
#include <utility>

#include "vmlab/format.hpp"
#include "vmlab/memory_slots.hpp"

namespace vmlab::monitor {

Status MonitorRegionMemory::create(ModeContext& context) {
  auto region = GuestMemory::create(kMonitorSize);
  if (!region) return region.error();
  m_region.emplace(std::move(*region));
  if (auto status = context.vm.set_user_memory_region(slot_number(MemorySlot::MonitorRegion),
                                                      kMonitorPhysicalBase, kStaticPartSize,
                                                      m_region->host_base());
      !status) {
    return status;
  }
  if (auto status = m_physical.add(GuestPhysAddr(0), context.memory); !status) return status;
  if (auto status = m_physical.add(GuestPhysAddr(kMonitorPhysicalBase), *m_region); !status) {
    return status;
  }
  return build_monitor_region(m_physical);
}

Status MonitorRegionMemory::seal() {
  m_pristine.resize(kStaticPartSize);
  return m_region->read(GuestPhysAddr(0), m_pristine);
}

std::optional<std::string> MonitorRegionMemory::integrity_violation(
    std::span<const std::uint64_t> also_owned) const {
  if (!m_region || m_pristine.empty()) return std::nullopt;
  std::vector<std::uint8_t> now(m_pristine.size());
  if (!m_region->read(GuestPhysAddr(0), now)) return "the monitor region cannot be read";
  constexpr std::uint64_t kTypeByte = 5;  // the TSS busy bit is bit 1 of the type
  auto monitor_owned = [&](std::uint64_t offset) {
    return offset == kGdtOffset + kTssSelector + kTypeByte ||
           (offset >= kStackOffset && offset < kFaultStackTopOffset) ||  // the stacks
           std::find(also_owned.begin(), also_owned.end(), offset) != also_owned.end();
  };
  for (std::uint64_t offset = 0; offset < now.size(); ++offset) {
    if (now[offset] != m_pristine[offset] && !monitor_owned(offset)) {
      return "monitor region byte at offset " + hex(offset) + " changed from " +
             hex(m_pristine[offset]) + " to " + hex(now[offset]);
    }
  }
  return std::nullopt;
}

}  // namespace vmlab::monitor
