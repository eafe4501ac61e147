#include <vmlab/devices/exit_port.hpp>

#include <algorithm>
#include <utility>

#include <vmlab/little_endian.hpp>

namespace vmlab::devices {
namespace {

constexpr std::size_t kMaximumAccessBytes = 4;  // QEMU's valid.max_access_size

}  // namespace

ExitPort::ExitPort(std::function<void(std::uint32_t value)> on_exit)
    : m_on_exit(std::move(on_exit)) {}

void ExitPort::read(std::uint64_t /*offset*/, std::span<std::uint8_t> data) {
  for (std::uint8_t& byte : data)
    byte = 0;
}

void ExitPort::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  if (offset >= kPortCount || data.empty()) return;
  // x86 port I/O is little endian.
  const auto value = static_cast<std::uint32_t>(
      load_little_endian(data.first(std::min(data.size(), kMaximumAccessBytes))));
  m_exit_requested = true;
  m_last_value = value;
  if (m_on_exit) m_on_exit(value);
}

}  // namespace vmlab::devices
