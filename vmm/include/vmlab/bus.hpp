// One bus type for port I/O and MMIO (STYLE.md 4): devices are keyed by
// half-open ranges, overlaps are rejected at registration, and a device sees
// offsets into its range, never absolute addresses.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "vmlab/io_device.hpp"
#include "vmlab/result.hpp"

namespace vmlab {

// Why a bus refused to register a device.
enum class BusError {
  kEmptyRange = 1,  // the range is empty or wraps around the address space
  kOverlap,         // the range overlaps a device already on the bus
};
constexpr const char* error_domain(BusError) {
  return "bus";
}

struct BusRange {
  std::uint64_t base = 0;
  std::uint64_t size = 0;
  std::uint64_t end() const { return base + size; }  // one past the last address
};

class IoBus {
 public:
  explicit IoBus(std::string name) : m_name(std::move(name)) {}

  // The bus does not own the device: the board does, and outlives the bus.
  Status add(BusRange range, IoDevice& device);

  enum class Access { Handled, Unmapped };
  // Read buffers are zero-filled before the device sees them. An access that
  // no device claims (or that straddles the end of a device's range) reads
  // all ones, as a floating ISA bus or unbacked memory does, writes go
  // nowhere, and both are counted. Callers hold the board's device lock.
  Access read(std::uint64_t address, std::span<std::uint8_t> data) const;
  Access write(std::uint64_t address, std::span<const std::uint8_t> data) const;
  std::uint64_t unmapped_accesses() const { return m_unmapped_accesses; }

  // The device at an address and its range, or nullptr.
  const IoDevice* device_at(std::uint64_t address) const;

 private:
  struct Entry {
    BusRange range;
    IoDevice* device;
  };
  const Entry* find(std::uint64_t address, std::uint64_t length) const;

  std::string m_name;
  std::map<std::uint64_t, Entry> m_entries;  // keyed by range base
  mutable std::uint64_t m_unmapped_accesses = 0;
};

}  // namespace vmlab

VMLAB_ERROR_KINDS(vmlab::BusError);
