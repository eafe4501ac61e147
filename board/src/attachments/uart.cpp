// The 16550A UART on COM1: the guest's human console.
#include "../attachment.hpp"
#include "vmlab/devices/uart16550.hpp"

namespace vmlab::board {
namespace {

class UartAttachment final : public PortRangeAttachment<devices::Uart16550> {
 public:
  using PortRangeAttachment::PortRangeAttachment;

 private:
  std::unique_ptr<devices::Uart16550> build(const AttachmentContext& context) override {
    auto output =
        context.config.console_output ? context.config.console_output : [](std::uint8_t) {};
    return std::make_unique<devices::Uart16550>(context.interrupts.line(irq()), std::move(output));
  }
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_uart_attachment() {
  return std::make_unique<UartAttachment>(VMLAB_DEVICE_UART16550, pc::kUartIrq, pc::kUartPorts);
}

}  // namespace vmlab::board
