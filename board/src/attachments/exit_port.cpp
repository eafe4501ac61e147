// QEMU's isa-debug-exit at 0xF4: the guest ends the run with its status.
#include <atomic>

#include "../attachment.hpp"
#include "vmlab/devices/exit_port.hpp"

namespace vmlab::board {
namespace {

class IsaDebugExitAttachment final
    : public PortRangeAttachment<devices::ExitPort, ExitPortAttachment> {
 public:
  using PortRangeAttachment::PortRangeAttachment;

  std::optional<std::uint32_t> exit_request() const override {
    const std::int64_t value = m_exit_value.load();
    if (value < 0) return std::nullopt;
    return static_cast<std::uint32_t>(value);
  }

 private:
  std::unique_ptr<devices::ExitPort> build(const AttachmentContext& /*context*/) override {
    return std::make_unique<devices::ExitPort>([this](std::uint32_t value) {
      // The first value the guest writes is the run's status.
      std::int64_t none = -1;
      m_exit_value.compare_exchange_strong(none, std::int64_t{value});
    });
  }

  // Read without the lock by the run loop after every exit: -1 until the
  // guest writes the exit port.
  std::atomic<std::int64_t> m_exit_value{-1};
};

}  // namespace

std::unique_ptr<ExitPortAttachment> make_exit_port_attachment() {
  return std::make_unique<IsaDebugExitAttachment>(VMLAB_DEVICE_EXIT_PORT, VMLAB_NO_IRQ,
                                                  pc::kExitPorts);
}

}  // namespace vmlab::board
