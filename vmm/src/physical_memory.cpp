#include "vmlab/physical_memory.hpp"

namespace vmlab {

namespace {
constexpr const char* kNotInOneRegion = "is not in one region";
}  // namespace

Status PhysicalMemoryMap::add(GuestPhysAddr base, GuestMemoryAccess& region) {
  const std::uint64_t start = base.value();
  const std::uint64_t end = start + region.size();
  if (end < start) {
    return Error{GuestMemoryError::kRegionOverlap, "physical memory region wraps around"};
  }
  for (const auto& existing : m_regions) {
    if (start < existing.base + existing.memory->size() && existing.base < end) {
      return Error{
          GuestMemoryError::kRegionOverlap,
          "physical memory region " + describe_range(base, region.size()) + " overlaps another"};
    }
  }
  m_regions.push_back(Region{start, &region});
  m_end = std::max(m_end, end);
  return {};
}

const PhysicalMemoryMap::Region* PhysicalMemoryMap::find(std::uint64_t address,
                                                         std::uint64_t length) const {
  for (const auto& region : m_regions) {
    if (address >= region.base &&
        region.memory->contains(GuestPhysAddr(address - region.base), length)) {
      return &region;
    }
  }
  return nullptr;
}

Status PhysicalMemoryMap::read(GuestPhysAddr address, std::span<std::uint8_t> out) const {
  const Region* region = find(address.value(), out.size());
  if (region == nullptr)
    return access_out_of_range("physical read", address, out.size(), kNotInOneRegion);
  return region->memory->read(GuestPhysAddr(address.value() - region->base), out);
}

Status PhysicalMemoryMap::write(GuestPhysAddr address, std::span<const std::uint8_t> in) {
  const Region* region = find(address.value(), in.size());
  if (region == nullptr)
    return access_out_of_range("physical write", address, in.size(), kNotInOneRegion);
  return region->memory->write(GuestPhysAddr(address.value() - region->base), in);
}

}  // namespace vmlab
