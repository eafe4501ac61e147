// QEMU's debug console ("isa-debugcon", the Bochs port 0xE9 hack): a write
// port for early, driver-free output (QEMU hw/char/debugcon.c).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// Registered on a 1-port range (0xE9). The guest's result lines travel here
// (DESIGN.md 3).
class DebugConsole final : public IoDevice {
 public:
  // What a read returns: QEMU's default "readback" property, which guests
  // compare against to detect the console.
  static constexpr std::uint8_t kReadbackValue = 0xe9;

  explicit DebugConsole(std::function<void(std::uint8_t)> output);

  std::string_view name() const override { return "debugcon"; }
  // Reads return 0xE9 in the first byte; any further bytes of a wider read
  // keep the bus's zero fill.
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  // A write delivers its low byte. QEMU accepts only byte accesses here and
  // splits a wider one into bytes, of which only the first lands on 0xE9, so
  // an `outw` to 0xE9 outputs its low byte there too.
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  std::uint64_t bytes_written() const { return m_bytes_written; }

 private:
  std::function<void(std::uint8_t)> m_output;
  std::uint64_t m_bytes_written = 0;
};

}  // namespace vmlab::devices
