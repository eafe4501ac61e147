#include <vmlab/devices/debug_console.hpp>

#include <utility>

namespace vmlab::devices {

DebugConsole::DebugConsole(std::function<void(std::uint8_t)> output)
    : m_output(std::move(output)) {}

void DebugConsole::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  if (offset != 0 || data.empty()) return;
  data[0] = kReadbackValue;
}

void DebugConsole::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (offset != 0 || data.empty()) return;
  ++m_bytes_written;
  if (m_output) m_output(data[0]);
}

}  // namespace vmlab::devices
