// Helpers shared by the emulated models for splitting and assembling accesses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vmlab::devices::detail {

// The 16550, 8259A and 8254 are byte-wide parts on the ISA bus. A wider access
// reaches them as byte accesses at consecutive ports, as the PC's bus sizing
// logic (and QEMU's memory core for a device with a 1-byte access size) splits
// it: `inw` from port n reads register n and then register n + 1, side effects
// included. Bytes that fall past the last register are dropped on a write and
// keep the bus's zero fill on a read.
template <typename ReadRegister>
void read_registers(std::uint64_t offset, std::span<std::uint8_t> data,
                    std::uint64_t register_count, ReadRegister&& read_register) {
  for (std::size_t index = 0; index < data.size(); ++index) {
    if (offset >= register_count || index >= register_count - offset) return;
    data[index] = read_register(static_cast<unsigned>(offset + index));
  }
}

template <typename WriteRegister>
void write_registers(std::uint64_t offset, std::span<const std::uint8_t> data,
                     std::uint64_t register_count, WriteRegister&& write_register) {
  for (std::size_t index = 0; index < data.size(); ++index) {
    if (offset >= register_count || index >= register_count - offset) return;
    write_register(static_cast<unsigned>(offset + index), data[index]);
  }
}

}  // namespace vmlab::devices::detail
