// The 16550A UART on COM1: the guest's human console.
#include "../attachment.hpp"
#include "vmlab/devices/uart16550.hpp"

namespace vmlab::board {
namespace {

class UartAttachment final : public DeviceAttachment {
 public:
  Status attach(const AttachmentContext& context) override {
    auto output =
        context.config.console_output ? context.config.console_output : [](std::uint8_t) {};
    m_uart = std::make_unique<devices::Uart16550>(context.interrupts.line(pc::kUartIrq),
                                                  std::move(output));
    return add_ports(context, pc::kUartPorts, *m_uart);
  }

  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(port_entry(VMLAB_DEVICE_UART16550, pc::kUartIrq, pc::kUartPorts));
  }

 private:
  std::unique_ptr<devices::Uart16550> m_uart;
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_uart_attachment() {
  return std::make_unique<UartAttachment>();
}

}  // namespace vmlab::board
