// The interrupt controller: the VMM's 8259A pair, connected to the router,
// or KVM's in-kernel PIC (--irqchip kernel), which KVM models entirely.
#include "../attachment.hpp"
#include "vmlab/devices/pic8259.hpp"

namespace vmlab::board {
namespace {

class PicAttachment final : public DeviceAttachment {
 public:
  Status attach(const AttachmentContext& context) override {
    if (context.config.irqchip == IrqchipModel::Kernel) {
      if (auto status = context.vm.create_irqchip(); !status) {
        return Error{BoardError::kIrqchipUnavailable,
                     status.error().message +
                         " (this KVM cannot model the interrupt controller; use --irqchip vmm)",
                     status.error().system_errno};
      }
      return {};
    }
    m_pic = std::make_unique<devices::Pic8259Pair>();
    context.interrupts.connect(*m_pic);
    auto added = add_ports(context, pc::kPicMasterPorts, m_pic->master_ports());
    return added ? add_ports(context, pc::kPicSlavePorts, m_pic->slave_ports()) : added;
  }

  // Listed with either controller: the guest programs both the same way.
  void describe(std::vector<vmlab_device>& table) const override {
    table.push_back(port_entry(VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, pc::kPicMasterPorts));
    table.push_back(port_entry(VMLAB_DEVICE_PIC8259, VMLAB_NO_IRQ, pc::kPicSlavePorts));
  }

 private:
  std::unique_ptr<devices::Pic8259Pair> m_pic;  // null with the in-kernel irqchip
};

}  // namespace

std::unique_ptr<DeviceAttachment> make_pic_attachment() {
  return std::make_unique<PicAttachment>();
}

}  // namespace vmlab::board
