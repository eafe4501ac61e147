// Little-endian loads and stores of up to eight bytes: x86 memory, port I/O,
// virtio (virtio 1.2, 1.4) and the MMIO data of kvm_run are all little endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vmlab {

// The value of `bytes`, zero-extended; bytes past the eighth are ignored.
constexpr std::uint64_t load_little_endian(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  for (std::size_t index = 0; index < bytes.size() && index < sizeof(value); ++index) {
    value |= std::uint64_t{bytes[index]} << (8 * index);
  }
  return value;
}

// Writes the low bytes of `value` into `bytes`; bytes past the eighth get 0.
constexpr void store_little_endian(std::span<std::uint8_t> bytes, std::uint64_t value) {
  for (std::size_t index = 0; index < bytes.size(); ++index) {
    bytes[index] = static_cast<std::uint8_t>(index < sizeof(value) ? value >> (8 * index) : 0);
  }
}

}  // namespace vmlab
