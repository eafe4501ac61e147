// The interface every port-I/O or MMIO device model implements.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

namespace vmlab {

// A device sees offsets into the range it was registered at, never absolute
// ports or addresses, so the board can move it without the device knowing.
// Read buffers arrive zero-filled. Accesses are 1, 2, 4 or 8 bytes; a device
// decides what an access width it does not support means, as hardware would,
// and never fails: a guest cannot make a device model throw.
//
// Thread safety: the board serializes every call into a device with its device
// lock, including timer callbacks, so a device needs no locking of its own.
class IoDevice {
 public:
  virtual ~IoDevice() = default;
  virtual std::string_view name() const = 0;
  virtual void read(std::uint64_t offset, std::span<std::uint8_t> data) = 0;
  virtual void write(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
};

// An interrupt request line as a device drives it: true = asserted.
// Edge-triggered consumers (the 8259A in its default mode) see a rising edge
// when the level goes from false to true.
using IrqLine = std::function<void(bool level)>;

}  // namespace vmlab
