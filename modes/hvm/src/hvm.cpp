#include "vmlab/modes/hvm.hpp"

#include "vmlab/boot.hpp"

namespace vmlab::modes {

Status HvmMode::prepare(ModeContext& context, const LoadedImage& image) {
  auto special = context.vcpu.special_registers();
  if (!special) return special.error();
  kvm_regs registers{};
  set_long_mode_entry_state(*special, registers, image.entry);
  if (auto status = context.vcpu.set_special_registers(*special); !status) return status;
  return context.vcpu.set_registers(registers);
}

Result<Injection> HvmMode::deliver_interrupts(ModeContext& context) {
  InterruptController* controller = context.board.interrupt_controller();
  if (controller == nullptr) return kNoInjection;  // KVM's in-kernel irqchip delivers them itself
  kvm_run& run = context.vcpu.run_state();
  std::lock_guard lock(context.board.device_lock());
  if (!controller->interrupt_pending()) {
    run.request_interrupt_window = 0;
    return kNoInjection;
  }
  // KVM API, KVM_INTERRUPT: only when the guest can take it now (IF set, no
  // interrupt shadow); otherwise ask for an exit when the window opens.
  if (run.ready_for_interrupt_injection != 0 && run.if_flag != 0) {
    const std::uint8_t vector = controller->acknowledge();
    run.request_interrupt_window = 0;
    if (auto status = context.vcpu.inject_interrupt(vector); !status) return status.error();
    return Injection{vector};
  }
  run.request_interrupt_window = 1;
  return kNoInjection;
}

}  // namespace vmlab::modes
