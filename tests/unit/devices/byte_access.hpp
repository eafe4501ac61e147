// One-byte register accesses for the device model tests, as a guest's inb
// and outb reach a model: at an offset into its range.
#pragma once

#include <cstdint>
#include <span>

#include "vmlab/io_device.hpp"

namespace vmlab::devices::testing {

inline std::uint8_t in(IoDevice& device, std::uint64_t offset) {
  std::uint8_t value = 0;
  device.read(offset, std::span<std::uint8_t>(&value, 1));
  return value;
}

inline void out(IoDevice& device, std::uint64_t offset, std::uint8_t value) {
  device.write(offset, std::span<const std::uint8_t>(&value, 1));
}

}  // namespace vmlab::devices::testing
