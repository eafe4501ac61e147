// QEMU's "isa-debug-exit" device (QEMU hw/misc/debugexit.c): a guest ends the
// run by writing a status value to it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// Registered as QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=0x04` is:
// a 4-port range at 0xF4. Any write of value v to any of its ports (1, 2 or 4
// bytes, little endian, zero-extended; only the low 4 bytes of a wider
// access count, QEMU's largest valid access being 4 bytes) calls on_exit(v).
// The board decides what exiting means; this model only reports.
class ExitPort final : public IoDevice {
 public:
  static constexpr std::uint64_t kPortCount = 4;

  explicit ExitPort(std::function<void(std::uint32_t value)> on_exit);

  std::string_view name() const override { return "debug-exit"; }
  // Reads return 0, as QEMU's debug_exit_read does.
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // QEMU calls exit((v << 1) | 1), so a guest can never make it exit with 0.
  // The status a parent process then sees (WEXITSTATUS, or `$?` in a shell)
  // is the low 8 bits of that, which is what this returns: 0x10 -> 33.
  static int qemu_exit_status(std::uint32_t value) {
    return static_cast<int>(((static_cast<std::uint64_t>(value) << 1) | 1) & 0xff);
  }

  // The last value written, if any: for a board that polls rather than
  // acting inside the callback.
  bool exit_requested() const { return m_exit_requested; }
  std::uint32_t last_value() const { return m_last_value; }

 private:
  std::function<void(std::uint32_t)> m_on_exit;
  bool m_exit_requested = false;
  std::uint32_t m_last_value = 0;
};

}  // namespace vmlab::devices
