#include "vmlab/bus.hpp"
#include "vmlab/format.hpp"

#include <algorithm>
#include <cstdio>

namespace vmlab {

Status IoBus::add(BusRange range, IoDevice& device) {
  if (range.size == 0 || range.end() < range.base) {
    return Error{BusError::kEmptyRange, m_name + ": device " + std::string(device.name()) +
                                            " has an empty or wrapping range"};
  }
  auto overlap = [&](const Entry& other) {
    return Error{BusError::kOverlap, m_name + ": " + std::string(device.name()) + " at [" +
                                         hex(range.base) + ", " + hex(range.end()) + ") overlaps " +
                                         std::string(other.device->name())};
  };
  // The first entry at or after the new base, and the one before it, are the
  // only ones that can overlap [base, end).
  auto next = m_entries.lower_bound(range.base);
  if (next != m_entries.end() && next->second.range.base < range.end()) {
    return overlap(next->second);
  }
  if (next != m_entries.begin()) {
    auto previous = std::prev(next);
    if (previous->second.range.end() > range.base) return overlap(previous->second);
  }
  m_entries.emplace(range.base, Entry{range, &device});
  return {};
}

const IoBus::Entry* IoBus::find(std::uint64_t address, std::uint64_t length) const {
  auto after = m_entries.upper_bound(address);
  if (after == m_entries.begin()) return nullptr;
  const Entry& entry = std::prev(after)->second;
  if (address >= entry.range.end() || length > entry.range.end() - address) return nullptr;
  return &entry;
}

IoBus::Access IoBus::read(std::uint64_t address, std::span<std::uint8_t> data) const {
  std::fill(data.begin(), data.end(), std::uint8_t{0});
  const Entry* entry = find(address, data.size());
  if (entry == nullptr) {
    std::fill(data.begin(), data.end(), std::uint8_t{0xff});
    ++m_unmapped_accesses;
    return Access::Unmapped;
  }
  entry->device->read(address - entry->range.base, data);
  return Access::Handled;
}

IoBus::Access IoBus::write(std::uint64_t address, std::span<const std::uint8_t> data) const {
  const Entry* entry = find(address, data.size());
  if (entry == nullptr) {
    ++m_unmapped_accesses;
    return Access::Unmapped;
  }
  entry->device->write(address - entry->range.base, data);
  return Access::Handled;
}

const IoDevice* IoBus::device_at(std::uint64_t address) const {
  const Entry* entry = find(address, 1);
  return entry == nullptr ? nullptr : entry->device;
}

}  // namespace vmlab
