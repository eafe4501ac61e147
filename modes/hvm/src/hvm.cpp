#include "vmlab/modes/hvm.hpp"

#include <variant>

#include "vmlab/boot.hpp"
#include "vmlab/x86.hpp"

namespace vmlab::modes {

Status HvmMode::prepare(ModeContext& context, const LoadedImage& image) {
  auto special = context.vcpu.special_registers();
  if (!special) return special.error();
  kvm_regs registers{};
  set_long_mode_entry_state(*special, registers, image.entry);
  if (auto status = context.vcpu.set_special_registers(*special); !status) return status;
  if (auto status = context.vcpu.set_registers(registers); !status) return status;
  // After the registers: KVM sets TF in the guest's RFLAGS for the step, and
  // KVM_SET_REGS afterwards would take it away again.
  if (m_census) return context.vcpu.set_single_step(true);
  return {};
}

std::optional<InstructionCensus> HvmMode::census() const {
  if (!m_census) return std::nullopt;
  InstructionCensus counts = m_counts;
  // KVM steps CPL3 on VT-x and AMD-V; kvm_pvm's emulated iretq to user mode
  // drops its TF, and no user instruction is ever stepped there.
  counts.user_mode_counted = counts.user_steps != 0;
  return counts;
}

ExitDisposition HvmMode::handle_exit(ModeContext& context, const VcpuExit& exit) {
  const auto* debug = std::get_if<exits::Debug>(&exit);
  if (!m_census || debug == nullptr || debug->exception != kVectorDebug) {
    return ExitDisposition::not_mine();
  }
  // One instruction retired. Its CPL is the one it left the CPU at: a step
  // out of user mode (syscall) counts as user's.
  const kvm_run& run = context.vcpu.run_state();
  std::uint8_t cpl = 0;
  if ((run.kvm_valid_regs & KVM_SYNC_X86_SREGS) != 0) {
    cpl = run.s.regs.sregs.cs.dpl;
  } else {
    auto special = context.vcpu.special_registers();
    if (!special) return ExitDisposition::stop(special.error().message);
    cpl = special->cs.dpl;
  }
  ++(cpl == 3 ? m_counts.user_steps : m_counts.kernel_steps);
  return ExitDisposition::handled();
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
