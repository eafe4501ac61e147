// Control transfers for the instruction emulator: hlt (Intel SDM vol. 2A
// HLT), iretq (vol. 2A IRET, "IA-32e-MODE-RETURN"), far ret (vol. 2B RET,
// "Far return"), int3 and int n (vol. 2A INT n; delivered through the
// virtual IDT by deliver_event, vol. 3A 6.12.1), syscall and sysret (vol. 2B
// SYSCALL, SYSRET; vol. 3A 5.8.8). Each checks the code and stack segments
// it loads in the virtual GDT as the CPU would and switches the virtual CPL.
#include <Zydis/Zydis.h>

#include <array>
#include <span>

#include "instruction.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::full {

using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace detail {
namespace {

Emulation halt(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  GuestRegisters& registers = instruction.registers();
  registers.rip += instruction.info().length;
  registers.rflags &= ~kRflagsResume;
  instruction.cpu().halted = true;
  return instruction.outcome(EmulationKind::Halt);
}

// --- Far returns -------------------------------------------------------------------

// The code-segment checks shared by IRET and far RET in IA-32e mode.
OrFault<SegmentDescriptor> check_return_code_segment(Instruction& instruction,
                                                     std::uint16_t selector) {
  if (is_null_selector(selector) && (selector & kSelectorTableIndicator) == 0) {
    return {{}, exception(kVectorGeneralProtection, 0)};
  }
  auto descriptor = read_gdt_descriptor(instruction.cpu(), instruction.memory(), selector,
                                        DescriptorSize::Segment8);
  if (descriptor.fault) return descriptor;
  const SegmentDescriptor& code = descriptor.value;
  const auto requested = static_cast<std::uint8_t>(selector & kSelectorPrivilegeMask);
  const Event bad = exception(kVectorGeneralProtection, selector_error(selector));
  if (!code.is_code() || requested < instruction.cpu().cpl) return {{}, bad};
  if (code.is_conforming_code() ? code.privilege_level > requested
                                : code.privilege_level != requested) {
    return {{}, bad};
  }
  if (!code.present) {
    return {{}, exception(kVectorSegmentNotPresent, selector_error(selector))};
  }
  if (code.long_mode && code.default_size) return {{}, bad};  // L = D = 1 is reserved
  return descriptor;
}

// The SS loaded by IRET and by a far RET to an outer level in IA-32e mode. A
// null SS is allowed only for a 64-bit return below CPL3 with SS.RPL = CPL.
std::optional<Event> check_return_stack_segment(Instruction& instruction,
                                                std::uint16_t stack_selector,
                                                std::uint16_t code_selector,
                                                bool returns_to_64bit) {
  const auto new_privilege = static_cast<std::uint8_t>(code_selector & kSelectorPrivilegeMask);
  const auto stack_requested = static_cast<std::uint8_t>(stack_selector & kSelectorPrivilegeMask);
  if (is_null_selector(stack_selector) && (stack_selector & kSelectorTableIndicator) == 0) {
    if (!returns_to_64bit || new_privilege == 3 || stack_requested != new_privilege) {
      return exception(kVectorGeneralProtection, 0);
    }
    return std::nullopt;
  }
  const Event bad = exception(kVectorGeneralProtection, selector_error(stack_selector));
  if (stack_requested != new_privilege) return bad;
  auto descriptor = read_gdt_descriptor(instruction.cpu(), instruction.memory(), stack_selector,
                                        DescriptorSize::Segment8);
  if (descriptor.fault) return descriptor.fault;
  if (!descriptor.value.is_writable_data() || descriptor.value.privilege_level != new_privilege) {
    return bad;
  }
  if (!descriptor.value.present) {
    return exception(kVectorStackFault, selector_error(stack_selector));
  }
  return std::nullopt;
}

// A return to an outer privilege level leaves DS, ES, FS and GS holding
// nothing the new CPL could not load itself: each that holds a data or
// non-conforming code segment with DPL < the new CPL becomes null (Intel SDM
// vol. 2A IRET and vol. 2B RET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL", judged on
// the hidden part of the register). Only the selector changes: FS and GS
// keep their bases, which 64-bit mode still uses.
void invalidate_privileged_data_segments(VirtualCpu& cpu, std::uint8_t new_privilege) {
  for (DataSegmentRegister* segment : {&cpu.ds, &cpu.es, &cpu.fs, &cpu.gs}) {
    if (segment->data_or_nonconforming_code && new_privilege > segment->privilege_level) {
      *segment = DataSegmentRegister{0, 0, false};
    }
  }
}

// iretq/iretd in IA-32e mode: always pops RIP, CS, RFLAGS, RSP and SS.
Emulation interrupt_return(Instruction& instruction, const Event&) {
  GuestRegisters& registers = instruction.registers();
  VirtualCpu& cpu = instruction.cpu();
  const unsigned slot = instruction.info().operand_width / 8;
  if (slot != 8 && slot != 4) return instruction.unsupported("16-bit iret is not emulated");
  if ((registers.rflags & kRflagsNestedTask) != 0) return instruction.general_protection();

  auto stack = instruction.canonical_address(GuestVirtAddr(registers.rsp), ZYDIS_REGISTER_SS);
  if (stack.fault) return instruction.reflect(*stack.fault);
  std::array<std::uint8_t, 40> bytes{};
  if (auto fault =
          instruction.memory().read(stack.value, std::span(bytes.data(), std::size_t{5} * slot),
                                    instruction.data_privilege())) {
    return instruction.reflect(page_fault(*fault));
  }
  auto popped = [&](unsigned index) {
    return load_little_endian(std::span(bytes.data() + std::size_t{index} * slot, slot));
  };
  const std::uint64_t new_rip = popped(0);
  const auto code_selector = static_cast<std::uint16_t>(popped(1));
  const std::uint64_t popped_rflags = popped(2);
  const std::uint64_t new_rsp = popped(3);
  const auto stack_selector = static_cast<std::uint16_t>(popped(4));

  if (!is_canonical(GuestVirtAddr(new_rip), cpu)) return instruction.general_protection();
  auto code = check_return_code_segment(instruction, code_selector);
  if (code.fault) return instruction.reflect(*code.fault);
  if (!code.value.is_64bit_code()) return instruction.unsupported("iret to compatibility mode");
  if (auto fault = check_return_stack_segment(instruction, stack_selector, code_selector, true)) {
    return instruction.reflect(*fault);
  }

  // RFLAGS: the always-loaded bits, then IF if CPL <= IOPL and IOPL, VIF and
  // VIP only at CPL0, both judged at the privilege the iret ran at.
  const std::uint8_t old_privilege = cpu.cpl;
  std::uint64_t loaded = kRflagsCarry | kRflagsParity | kRflagsAuxiliaryCarry | kRflagsZero |
                         kRflagsSign | kRflagsTrap | kRflagsDirection | kRflagsOverflow |
                         kRflagsNestedTask | kRflagsResume | kRflagsAlignmentCheck |
                         kRflagsIdentification;
  if (old_privilege <= cpu.iopl) loaded |= kRflagsInterrupt;
  if (old_privilege == 0) {
    loaded |= kRflagsIoplMask | kRflagsVirtualInterrupt | kRflagsVirtualInterruptPending;
  }
  const std::uint64_t current = guest_visible_rflags(registers, cpu);
  std::uint64_t rflags = (current & ~loaded) | (popped_rflags & loaded);
  // Only bits the guest can run with: RF and VM clear (the monitor resumes the
  // guest with an iretq of its own).
  rflags &= ~(kRflagsResume | kRflagsVirtual8086);
  set_guest_visible_rflags(registers, cpu, rflags);

  registers.rip = new_rip;
  registers.rsp = slot == 8 ? new_rsp : new_rsp & 0xffffffff;
  cpu.cs = code_selector;
  cpu.ss = stack_selector;
  cpu.cpl = static_cast<std::uint8_t>(code_selector & kSelectorPrivilegeMask);
  if (cpu.cpl > old_privilege) invalidate_privileged_data_segments(cpu, cpu.cpl);
  return instruction.outcome(EmulationKind::Emulated);
}

// ret is emulated only as a far return; a near one faulted on its own.
bool is_far_return(const Decoded& decoded) {
  return decoded.instruction.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR;
}

// ret far [imm16] (protected mode far return): pops RIP and CS; to an outer
// privilege level also RSP and SS. The gdt_load of the vmlab guest reloads
// CS this way.
Emulation far_return(Instruction& instruction, const Event&) {
  GuestRegisters& registers = instruction.registers();
  VirtualCpu& cpu = instruction.cpu();
  const unsigned slot = instruction.info().operand_width / 8;
  if (slot != 8 && slot != 4) return instruction.unsupported("16-bit far return is not emulated");
  std::uint64_t release = 0;
  if (instruction.operand(0).type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
      instruction.operand(0).visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT) {
    release = instruction.operand(0).imm.value.u & 0xffff;
  }
  // Pops two slots at `address`: the offset (RIP or RSP) and the selector.
  std::array<std::uint8_t, 16> bytes{};
  auto pop_pair = [&](GuestVirtAddr address) -> std::optional<Event> {
    auto stack = instruction.canonical_address(address, ZYDIS_REGISTER_SS);
    if (stack.fault) return stack.fault;
    if (auto fault =
            instruction.memory().read(stack.value, std::span(bytes.data(), std::size_t{2} * slot),
                                      instruction.data_privilege())) {
      return page_fault(*fault);
    }
    return std::nullopt;
  };
  auto offset = [&] { return load_little_endian(std::span(bytes.data(), slot)); };
  auto selector = [&] {
    return static_cast<std::uint16_t>(load_little_endian(std::span(bytes.data() + slot, slot)));
  };

  if (auto fault = pop_pair(GuestVirtAddr(registers.rsp))) return instruction.reflect(*fault);
  const std::uint64_t new_rip = offset();
  const std::uint16_t code_selector = selector();
  auto code = check_return_code_segment(instruction, code_selector);
  if (code.fault) return instruction.reflect(*code.fault);
  if (!code.value.is_64bit_code()) {
    return instruction.unsupported("far return to compatibility mode");
  }
  const auto new_privilege = static_cast<std::uint8_t>(code_selector & kSelectorPrivilegeMask);

  std::uint64_t new_rsp = registers.rsp + std::uint64_t{2} * slot + release;
  std::uint16_t stack_selector = cpu.ss;
  if (new_privilege > cpu.cpl) {
    if (auto fault = pop_pair(GuestVirtAddr(new_rsp))) return instruction.reflect(*fault);
    new_rsp = offset() + release;
    stack_selector = selector();
    if (auto fault = check_return_stack_segment(instruction, stack_selector, code_selector, true)) {
      return instruction.reflect(*fault);
    }
  }
  if (!is_canonical(GuestVirtAddr(new_rip), cpu)) return instruction.general_protection();
  registers.rip = new_rip;
  registers.rsp = new_rsp;
  cpu.cs = code_selector;
  cpu.ss = stack_selector;
  if (new_privilege > cpu.cpl) invalidate_privileged_data_segments(cpu, new_privilege);
  cpu.cpl = new_privilege;
  return instruction.transferred();
}

// --- int3, int n ---------------------------------------------------------------------

// int3 / int n trapped because the real gate's DPL is 0: deliver_event
// checks the virtual gate's DPL against the virtual CPL (Intel SDM vol. 3A,
// 6.12.1.1) and pushes the address after the instruction.
Emulation software_interrupt_to(Instruction& instruction, std::uint8_t vector) {
  return instruction.reflect(
      Event{vector, std::nullopt, EventSource::Software, {}, instruction.info().length});
}

Emulation breakpoint(Instruction& instruction, const Event&) {
  return software_interrupt_to(instruction, kVectorBreakpoint);
}

Emulation software_interrupt(Instruction& instruction, const Event&) {
  return software_interrupt_to(instruction,
                               static_cast<std::uint8_t>(instruction.operand(0).imm.value.u));
}

// --- syscall, sysret -----------------------------------------------------------------

// A syscall reaches the emulator when the real EFER.SCE is clear (#UD): with
// the virtual SCE clear the guest gets the #UD; otherwise it is carried out.
Emulation system_call(Instruction& instruction, const Event&) {
  VirtualCpu& cpu = instruction.cpu();
  if ((cpu.efer & kEferSyscallEnable) == 0) return instruction.reflect(invalid_opcode_event());
  instruction.registers().rip += instruction.info().length;
  deliver_syscall(instruction.registers(), cpu);
  return instruction.outcome(EmulationKind::Emulated);
}

// sysretq: CPL0; RIP = RCX (canonical), RFLAGS = (R11 & 3C7FD7H) | 2,
// CS = STAR[63:48] + 16, SS = STAR[63:48] + 8, both with RPL 3.
Emulation system_return(Instruction& instruction, const Event&) {
  GuestRegisters& registers = instruction.registers();
  VirtualCpu& cpu = instruction.cpu();
  if ((cpu.efer & kEferSyscallEnable) == 0) return instruction.reflect(invalid_opcode_event());
  if (!instruction.kernel_mode()) return instruction.general_protection();
  if (instruction.info().operand_width != 64) {
    return instruction.unsupported("sysret to compatibility mode");
  }
  if (!is_canonical(GuestVirtAddr(registers.rcx), cpu)) return instruction.general_protection();
  registers.rip = registers.rcx;
  set_guest_visible_rflags(registers, cpu, (registers.r11 & 0x3c7fd7) | kRflagsFixed);
  const auto base = static_cast<std::uint16_t>(cpu.star >> 48);
  cpu.cs = static_cast<std::uint16_t>((base + 16) | 3);
  cpu.ss = static_cast<std::uint16_t>((base + 8) | 3);
  cpu.cpl = 3;
  return instruction.outcome(EmulationKind::Emulated);
}

constexpr std::array kControlTransferOperations{
    Operation{ZYDIS_MNEMONIC_HLT, halt},
    Operation{ZYDIS_MNEMONIC_IRET, interrupt_return},
    Operation{ZYDIS_MNEMONIC_IRETD, interrupt_return},
    Operation{ZYDIS_MNEMONIC_IRETQ, interrupt_return},
    Operation{ZYDIS_MNEMONIC_RET, far_return, is_far_return},
    Operation{ZYDIS_MNEMONIC_INT3, breakpoint},
    Operation{ZYDIS_MNEMONIC_INT, software_interrupt},
    Operation{ZYDIS_MNEMONIC_SYSCALL, system_call},
    Operation{ZYDIS_MNEMONIC_SYSRET, system_return},
};

}  // namespace

std::span<const Operation> control_transfer_operations() {
  return kControlTransferOperations;
}

}  // namespace detail

Emulation emulate_iretq(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory) {
  return detail::decode_and_emulate(
      registers, cpu, memory, nullptr, [](detail::Instruction& instruction) {
        for (const detail::Operation& operation : detail::kControlTransferOperations) {
          if (operation.mnemonic == instruction.info().mnemonic &&
              operation.emulate == detail::interrupt_return) {
            return detail::interrupt_return(instruction, Event{});
          }
        }
        return instruction.unsupported("not an iret");
      });
}

}  // namespace vmlab::full
