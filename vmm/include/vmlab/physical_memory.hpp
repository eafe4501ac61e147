// Guest-physical memory made of several host mappings at different guest
// addresses (guest RAM at 0, a monitor region above it), seen through the one
// GuestMemoryAccess interface. An access that is not wholly inside one region
// is an error, as the bounds-checked GuestMemory itself would report.
#pragma once

#include <vector>

#include "vmlab/guest_memory.hpp"

namespace vmlab {

class PhysicalMemoryMap final : public GuestMemoryAccess {
 public:
  // Regions must not overlap; the map does not own them.
  Status add(GuestPhysAddr base, GuestMemoryAccess& region);

  // One past the highest mapped address (accesses in holes still fail).
  std::uint64_t size() const override { return m_end; }
  Status read(GuestPhysAddr address, std::span<std::uint8_t> out) const override;
  Status write(GuestPhysAddr address, std::span<const std::uint8_t> in) override;

 private:
  struct Region {
    std::uint64_t base;
    GuestMemoryAccess* memory;
  };
  const Region* find(std::uint64_t address, std::uint64_t length) const;
  std::vector<Region> m_regions;
  std::uint64_t m_end = 0;
};

}  // namespace vmlab
