// QEMU's debug console at 0xE9, where the guest's result lines arrive
// (DESIGN.md 3): kept line by line, bounded, for the host to parse.
#include "vmlab/devices/debug_console.hpp"
#include "../attachment.hpp"

namespace vmlab::board {
namespace {

// A guest cannot make the VMM keep unbounded output.
constexpr std::size_t kMaximumLineLength = 4096;
constexpr std::size_t kMaximumMachineLines = 16384;  // VMLAB-* lines
constexpr std::size_t kMaximumOtherLines = 256;      // anything else

class DebugconAttachment final
    : public PortRangeAttachment<devices::DebugConsole, DebugConsoleAttachment> {
 public:
  using PortRangeAttachment::PortRangeAttachment;

  std::vector<std::string> lines() const override {
    std::vector<std::string> lines = m_machine_lines;
    lines.insert(lines.end(), m_other_lines.begin(), m_other_lines.end());
    return lines;
  }
  std::uint64_t lines_dropped() const override { return m_lines_dropped; }

 private:
  std::unique_ptr<devices::DebugConsole> build(const AttachmentContext& context) override {
    m_line_callback = context.config.debug_line;
    return std::make_unique<devices::DebugConsole>([this](std::uint8_t byte) { on_byte(byte); });
  }

  // Called from the device, under the device lock.
  void on_byte(std::uint8_t byte) {
    if (byte != '\n') {
      if (m_partial_line.size() < kMaximumLineLength) {
        m_partial_line.push_back(static_cast<char>(byte));
      }
      return;
    }
    if (m_line_callback) m_line_callback(m_partial_line);
    // Result lines (VMLAB-...) are what the host parses: keep those, up to a
    // limit; of the rest keep only a short tail for error messages.
    const bool machine_readable = m_partial_line.rfind("VMLAB-", 0) == 0;
    if (machine_readable && m_machine_lines.size() < kMaximumMachineLines) {
      m_machine_lines.push_back(std::move(m_partial_line));
    } else if (!machine_readable && m_other_lines.size() < kMaximumOtherLines) {
      m_other_lines.push_back(std::move(m_partial_line));
    } else {
      ++m_lines_dropped;
    }
    m_partial_line.clear();
  }

  std::function<void(const std::string&)> m_line_callback;
  // Guarded by the device lock.
  std::string m_partial_line;
  std::vector<std::string> m_machine_lines;
  std::vector<std::string> m_other_lines;
  std::uint64_t m_lines_dropped = 0;
};

}  // namespace

std::unique_ptr<DebugConsoleAttachment> make_debug_console_attachment() {
  return std::make_unique<DebugconAttachment>(VMLAB_DEVICE_DEBUGCON, VMLAB_NO_IRQ,
                                              pc::kDebugConsolePorts);
}

}  // namespace vmlab::board
