// System state for the instruction emulator: what the guest kernel believes
// it controls, kept in the virtual CPU. The interrupt flag (cli, sti: Intel
// SDM vol. 2A CLI, vol. 2B STI; pushf and popf, which never trap at CPL3,
// are in holes.cpp), control registers (vol. 2B MOV (Control Registers), lmsw,
// smsw, clts; vol. 3A 2.5), debug registers (not virtualized), MSRs (rdmsr,
// wrmsr, swapgs: vol. 2B; vol. 4 for the indexes), descriptor tables (lgdt,
// lidt, sgdt, sidt, sldt, str, ltr, lldt: vol. 2A/2B; vol. 3A 2.4, 3.5.1,
// 8.2.3), segment register loads and stores (vol. 2B MOV; vol. 3A 5.5-5.7), invlpg
// (vol. 2A), the caches (wbinvd, invd) and the counters (rdtsc, rdpmc).
#include <Zydis/Zydis.h>

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "instruction.hpp"
#include "vmlab/format.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::full::detail {

using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

// What this emulator's CPU implements of CR0 and CR4 (Intel SDM vol. 3A, 2.5).
constexpr std::uint64_t kCr0Defined = kCr0ProtectionEnable | kCr0MonitorCoprocessor |
                                      kCr0Emulation | kCr0TaskSwitched | kCr0ExtensionType |
                                      kCr0NumericError | kCr0WriteProtect | kCr0AlignmentMask |
                                      kCr0NotWriteThrough | kCr0CacheDisable | kCr0Paging;
constexpr std::uint64_t kCr0PagingControl = kCr0Paging | kCr0WriteProtect | kCr0ProtectionEnable;
// What the virtual CPU implements: VME, PVI, TSD, DE, PSE, PAE, MCE, PGE,
// PCE, OSFXSR, OSXMMEXCPT, UMIP, LA57 (bits 0-12), FSGSBASE, PCIDE, OSXSAVE
// (16-18), SMEP, SMAP, PKE, CET, PKS (20-24). Setting any other bit (VMXE,
// SMXE, reserved) is #GP(0).
constexpr std::uint64_t kCr4Supported = 0x1fff | (0x7ull << 16) | (0x1full << 20);
constexpr std::uint64_t kCr4PagingControl =
    kCr4PageSizeExtensions | kCr4PhysicalAddressExtension | kCr4PageGlobalEnable |
    kCr4FiveLevelPaging | kCr4ProcessContextIdentifiers | kCr4SupervisorExecutionPrevention |
    kCr4SupervisorAccessPrevention | kCr4ProtectionKeys | kCr4SupervisorProtectionKeys;

constexpr std::uint64_t kEferWritable =
    kEferSyscallEnable | kEferLongModeEnable | kEferLongModeActive | kEferNoExecuteEnable;

// --- cli, sti ------------------------------------------------------------------

// Protected mode without VME/PVI (which do not apply in 64-bit mode): allowed
// at CPL <= IOPL, else #GP(0).
Emulation interrupt_flag_instruction(Instruction& instruction, bool enable) {
  const VirtualCpu& cpu = instruction.cpu();
  if (cpu.cpl > cpu.iopl) return instruction.general_protection();
  const bool was_enabled = cpu.interrupt_flag;
  instruction.set_interrupt_flag(enable);
  Emulation emulation = instruction.completed();
  emulation.interrupt_shadow = enable && !was_enabled;
  return emulation;
}

Emulation clear_interrupts(Instruction& instruction, const Event&) {
  return interrupt_flag_instruction(instruction, false);
}

Emulation set_interrupts(Instruction& instruction, const Event&) {
  return interrupt_flag_instruction(instruction, true);
}

// --- Control registers -----------------------------------------------------------

Emulation read_control_register(Instruction& instruction, unsigned index,
                                ZydisRegister destination) {
  const VirtualCpu& cpu = instruction.cpu();
  std::uint64_t value = 0;
  switch (index) {
    case 0:
      value = cpu.cr0;
      break;
    case 2:
      value = cpu.cr2;
      break;
    case 3:
      value = cpu.cr3;
      break;
    case 4:
      value = cpu.cr4;
      break;
    case 8:
      value = cpu.cr8;
      break;
    default:
      return instruction.reflect(invalid_opcode_event());  // CR1, CR5-CR7, CR9-CR15 do not exist
  }
  write_register(instruction.registers(), destination, value);
  return instruction.completed();
}

// Intel SDM vol. 2B MOV (Control Registers) and vol. 3A 2.5: reserved bits
// and inconsistent combinations are #GP(0), and nothing changes.
Emulation write_control_register(Instruction& instruction, unsigned index, std::uint64_t value) {
  VirtualCpu& cpu = instruction.cpu();
  MonitorServices& services = instruction.services();
  const bool long_mode = (cpu.efer & kEferLongModeActive) != 0;
  switch (index) {
    case 0: {
      if ((value >> 32) != 0) return instruction.general_protection();
      // Reserved bits 31:0 are ignored; ET is fixed to 1.
      value = (value & kCr0Defined) | kCr0ExtensionType;
      if ((value & kCr0Paging) != 0 && (value & kCr0ProtectionEnable) == 0) {
        return instruction.general_protection();
      }
      if ((value & kCr0NotWriteThrough) != 0 && (value & kCr0CacheDisable) == 0) {
        return instruction.general_protection();
      }
      // Leaving IA-32e mode is only possible from compatibility mode.
      if (long_mode && (value & kCr0Paging) == 0) return instruction.general_protection();
      if ((value & kCr0WriteProtect) == 0 && (cpu.cr4 & kCr4ControlFlowEnforcement) != 0) {
        return instruction.general_protection();
      }
      const std::uint64_t changed = cpu.cr0 ^ value;
      cpu.cr0 = value;
      if ((changed & kCr0PagingControl) != 0) services.paging_control_changed();
      return instruction.completed();
    }
    case 2:
      cpu.cr2 = value;
      return instruction.completed();
    case 3: {
      const bool process_context = (cpu.cr4 & kCr4ProcessContextIdentifiers) != 0;
      std::uint64_t reserved = kCr3ReservedHigh;
      if (!process_context) reserved |= kCr3NoInvalidate;
      if ((value & reserved) != 0) return instruction.general_protection();
      const std::uint64_t old_cr3 = cpu.cr3;
      cpu.cr3 = value & ~kCr3NoInvalidate;
      services.cr3_written(old_cr3, cpu.cr3);
      return instruction.completed();
    }
    case 4: {
      if ((value & ~kCr4Supported) != 0) return instruction.general_protection();
      const std::uint64_t changed = cpu.cr4 ^ value;
      if (long_mode && (value & kCr4PhysicalAddressExtension) == 0) {
        return instruction.general_protection();
      }
      if (long_mode && (changed & kCr4FiveLevelPaging) != 0) {
        return instruction.general_protection();
      }
      if ((value & kCr4ProcessContextIdentifiers) != 0 &&
          (cpu.cr4 & kCr4ProcessContextIdentifiers) == 0 && (cpu.cr3 & 0xfff) != 0) {
        return instruction.general_protection();
      }
      if ((value & kCr4ControlFlowEnforcement) != 0 && (cpu.cr0 & kCr0WriteProtect) == 0) {
        return instruction.general_protection();
      }
      cpu.cr4 = value;
      if ((changed & kCr4PagingControl) != 0) services.paging_control_changed();
      return instruction.completed();
    }
    case 8:
      if ((value & ~std::uint64_t{0xf}) != 0) {
        return instruction.general_protection();  // TPR: bits 3:0
      }
      cpu.cr8 = value;
      return instruction.completed();
    default:
      return instruction.reflect(invalid_opcode_event());
  }
}

// lmsw r/m16 (Intel SDM vol. 2A LMSW): loads CR0 bits 3:0; cannot clear PE.
Emulation load_machine_status_word(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  VirtualCpu& cpu = instruction.cpu();
  auto source = instruction.read_selector_operand(instruction.operand(0));
  if (source.fault) return instruction.reflect(*source.fault);
  const std::uint64_t value =
      (cpu.cr0 & ~std::uint64_t{0xf}) | (source.value & 0xf) | (cpu.cr0 & kCr0ProtectionEnable);
  const std::uint64_t changed = cpu.cr0 ^ value;
  cpu.cr0 = value;
  if ((changed & kCr0PagingControl) != 0) instruction.services().paging_control_changed();
  return instruction.completed();
}

// Intel SDM vol. 2A CLTS: CPL0 only.
Emulation clear_task_switched(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  instruction.cpu().cr0 &= ~kCr0TaskSwitched;
  return instruction.completed();
}

// --- Segment registers -------------------------------------------------------------

// mov sreg, r/m16 in 64-bit mode (Intel SDM vol. 2B MOV, "Operation"; vol.
// 3A 5.5-5.7). The virtual CPU keeps SS; for DS, ES, FS and GS the selector
// and what a later return to an outer level checks of the descriptor; FS and
// GS also their bases. DS and ES have no base in 64-bit mode.
Emulation load_segment_register(Instruction& instruction, ZydisRegister segment) {
  VirtualCpu& cpu = instruction.cpu();
  if (segment == ZYDIS_REGISTER_CS) return instruction.reflect(invalid_opcode_event());
  auto selector_read = instruction.read_selector_operand(instruction.operand(1));
  if (selector_read.fault) return instruction.reflect(*selector_read.fault);
  const std::uint16_t selector = selector_read.value;
  const auto requested = static_cast<std::uint8_t>(selector & kSelectorPrivilegeMask);

  if (segment == ZYDIS_REGISTER_SS) {
    if (is_null_selector(selector)) {
      // 64-bit mode allows a null SS below CPL3 when RPL = CPL.
      if (cpu.cpl == 3 || requested != cpu.cpl) return instruction.general_protection();
    } else {
      if (requested != cpu.cpl) return instruction.general_protection(selector_error(selector));
      auto descriptor =
          read_gdt_descriptor(cpu, instruction.memory(), selector, DescriptorSize::Segment8);
      if (descriptor.fault) return instruction.reflect(*descriptor.fault);
      if (!descriptor.value.is_writable_data() || descriptor.value.privilege_level != cpu.cpl) {
        return instruction.general_protection(selector_error(selector));
      }
      if (!descriptor.value.present) {
        return instruction.reflect(exception(kVectorStackFault, selector_error(selector)));
      }
    }
    cpu.ss = selector;
    Emulation emulation = instruction.completed();
    emulation.interrupt_shadow = true;  // Intel SDM vol. 3A, 6.8.3
    return emulation;
  }

  std::uint64_t base = 0;
  DataSegmentRegister loaded_register{selector, 0, false};
  if (!is_null_selector(selector)) {
    auto descriptor =
        read_gdt_descriptor(cpu, instruction.memory(), selector, DescriptorSize::Segment8);
    if (descriptor.fault) return instruction.reflect(*descriptor.fault);
    const SegmentDescriptor& loaded = descriptor.value;
    if (!loaded.is_readable()) return instruction.general_protection(selector_error(selector));
    if (!loaded.is_conforming_code() &&
        (requested > loaded.privilege_level || cpu.cpl > loaded.privilege_level)) {
      return instruction.general_protection(selector_error(selector));
    }
    if (!loaded.present) {
      return instruction.reflect(exception(kVectorSegmentNotPresent, selector_error(selector)));
    }
    base = loaded.base & 0xffffffff;
    loaded_register.privilege_level = loaded.privilege_level;
    loaded_register.data_or_nonconforming_code = !loaded.is_conforming_code();
  }
  if (DataSegmentRegister* target = data_segment_register(cpu, segment)) *target = loaded_register;
  // A selector load sets FS/GS base from the descriptor (32 bits); a null
  // selector clears it, as Intel CPUs do.
  if (segment == ZYDIS_REGISTER_FS) cpu.fs_base = base;
  if (segment == ZYDIS_REGISTER_GS) cpu.gs_base = base;
  return instruction.completed();
}

// --- mov to and from control, debug and segment registers ------------------------------

// mov r/m, sreg (Intel SDM vol. 2B MOV): one of the x86 holes, it never
// traps, so under `full` the deprivileged kernel reads the real selectors,
// the monitor's. Emulated, it gives the guest's own: a register gets the
// selector zero-extended (a 16-bit register keeps its upper bits), memory 16
// bits whatever the operand size.
Emulation store_segment_register(Instruction& instruction, ZydisRegister segment) {
  const std::uint16_t selector = segment_selector(instruction.cpu(), segment);
  if (auto fault = instruction.store_word(instruction.operand(0), selector)) {
    return instruction.reflect(*fault);
  }
  return instruction.completed();
}

// mov is emulated only with a control or debug register, or with a segment
// register; any other mov faulted on its own account.
bool moves_system_register(const Decoded& decoded) {
  const auto& destination = decoded.operands[0];
  const auto& source = decoded.operands[1];
  return is_register_of_class(destination, ZYDIS_REGCLASS_CONTROL) ||
         is_register_of_class(source, ZYDIS_REGCLASS_CONTROL) ||
         is_register_of_class(destination, ZYDIS_REGCLASS_DEBUG) ||
         is_register_of_class(source, ZYDIS_REGCLASS_DEBUG) ||
         is_register_of_class(destination, ZYDIS_REGCLASS_SEGMENT) ||
         is_register_of_class(source, ZYDIS_REGCLASS_SEGMENT);
}

Emulation move(Instruction& instruction, const Event& trap) {
  const ZydisDecodedOperand& destination = instruction.operand(0);
  const ZydisDecodedOperand& source = instruction.operand(1);
  if (is_register_of_class(destination, ZYDIS_REGCLASS_SEGMENT)) {
    return load_segment_register(instruction, destination.reg.value);
  }
  if (is_register_of_class(source, ZYDIS_REGCLASS_SEGMENT)) {
    return store_segment_register(instruction, source.reg.value);
  }
  if (is_register_of_class(destination, ZYDIS_REGCLASS_DEBUG) ||
      is_register_of_class(source, ZYDIS_REGCLASS_DEBUG)) {
    if (!instruction.kernel_mode()) return instruction.reflect(trap);
    return instruction.unsupported("debug registers are not virtualized");
  }
  // Intel SDM vol. 2B MOV (Control Registers): CPL0 only; the general
  // register is always 64 bits wide in 64-bit mode.
  if (!instruction.kernel_mode()) return instruction.general_protection();
  if (is_register_of_class(destination, ZYDIS_REGCLASS_CONTROL)) {
    const auto index =
        static_cast<unsigned>(static_cast<std::uint8_t>(ZydisRegisterGetId(destination.reg.value)));
    return write_control_register(instruction, index,
                                  read_register(instruction.registers(), source.reg.value));
  }
  const auto index =
      static_cast<unsigned>(static_cast<std::uint8_t>(ZydisRegisterGetId(source.reg.value)));
  return read_control_register(instruction, index, destination.reg.value);
}

// --- Descriptor tables -------------------------------------------------------------

// lgdt/lidt m16&64 (Intel SDM vol. 2A LGDT/LIDT): CPL0; in 64-bit mode the
// operand is a 2-byte limit and an 8-byte base whatever the operand size.
Emulation load_descriptor_table(Instruction& instruction, TableRegister& table) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  auto address = instruction.effective_address(instruction.operand(0));
  if (address.fault) return instruction.reflect(*address.fault);
  std::array<std::uint8_t, 10> bytes{};
  if (auto fault = instruction.memory().read(address.value, bytes, instruction.data_privilege())) {
    return instruction.reflect(page_fault(*fault));
  }
  const std::uint64_t base = load_little_endian(std::span(bytes).subspan(2, 8));
  if (!is_canonical(GuestVirtAddr(base), instruction.cpu()))
    return instruction.general_protection();
  table.base = base;
  table.limit = static_cast<std::uint16_t>(load_little_endian(std::span(bytes).first(2)));
  return instruction.completed();
}

Emulation load_global_descriptor_table(Instruction& instruction, const Event&) {
  return load_descriptor_table(instruction, instruction.cpu().gdtr);
}

Emulation load_interrupt_descriptor_table(Instruction& instruction, const Event&) {
  return load_descriptor_table(instruction, instruction.cpu().idtr);
}

// sgdt/sidt/sldt/str/smsw only trap when the real CPU has CR4.UMIP set; the
// virtual CPU answers from its own state, or #GP(0) if the guest itself set
// UMIP and runs at CPL > 0 (Intel SDM vol. 3A, 2.5, CR4.UMIP).
bool user_mode_instruction_prevented(const Instruction& instruction) {
  return !instruction.kernel_mode() &&
         (instruction.cpu().cr4 & kCr4UserModeInstructionPrevention) != 0;
}

Emulation store_descriptor_table(Instruction& instruction, const TableRegister& table) {
  if (user_mode_instruction_prevented(instruction)) return instruction.general_protection();
  auto address = instruction.effective_address(instruction.operand(0));
  if (address.fault) return instruction.reflect(*address.fault);
  std::array<std::uint8_t, 10> bytes{};
  store_little_endian(std::span(bytes).first(2), table.limit);
  store_little_endian(std::span(bytes).subspan(2, 8), table.base);
  if (auto fault = instruction.memory().write(address.value, bytes, instruction.data_privilege())) {
    return instruction.reflect(page_fault(*fault));
  }
  return instruction.completed();
}

Emulation store_global_descriptor_table(Instruction& instruction, const Event&) {
  return store_descriptor_table(instruction, instruction.cpu().gdtr);
}

Emulation store_interrupt_descriptor_table(Instruction& instruction, const Event&) {
  return store_descriptor_table(instruction, instruction.cpu().idtr);
}

// sldt/str/smsw: a register destination gets the value zero-extended to the
// operand size (smsw: CR0 truncated to it, Intel SDM vol. 2B SMSW, "In 64-bit
// mode"); memory gets 16 bits (vol. 2B SLDT, STR, SMSW).
Emulation store_system_word(Instruction& instruction, std::uint64_t value) {
  if (user_mode_instruction_prevented(instruction)) return instruction.general_protection();
  if (auto fault = instruction.store_word(instruction.operand(0), value)) {
    return instruction.reflect(*fault);
  }
  return instruction.completed();
}

Emulation store_local_descriptor_table(Instruction& instruction, const Event&) {
  return store_system_word(instruction, instruction.cpu().ldtr);
}

Emulation store_task_register(Instruction& instruction, const Event&) {
  return store_system_word(instruction, instruction.cpu().tr);
}

Emulation store_machine_status_word(Instruction& instruction, const Event&) {
  return store_system_word(instruction, instruction.cpu().cr0);
}

// The step ltr and lldt share (Intel SDM vol. 2A LTR, LLDT; vol. 3A 7.2.3):
// a 16-byte system descriptor of `type` in the GDT, whose upper type field is
// 0 in IA-32e mode (#GP otherwise), and present (#NP otherwise). The
// descriptor, or the emulation that reports why the instruction faults.
std::variant<SegmentDescriptor, Emulation> present_system_descriptor(Instruction& instruction,
                                                                     std::uint16_t selector,
                                                                     std::uint8_t type) {
  auto descriptor = read_gdt_descriptor(instruction.cpu(), instruction.memory(), selector,
                                        DescriptorSize::System16);
  if (descriptor.fault) return instruction.reflect(*descriptor.fault);
  const SegmentDescriptor& loaded = descriptor.value;
  if (!loaded.system || loaded.type != type || loaded.upper_type != 0) {
    return instruction.general_protection(selector_error(selector));
  }
  if (!loaded.present) {
    return instruction.reflect(exception(kVectorSegmentNotPresent, selector_error(selector)));
  }
  return loaded;
}

// ltr r/m16 (Intel SDM vol. 2A LTR; vol. 3A 8.2.3): CPL0; an available
// 64-bit TSS in the GDT, 16 bytes, present, canonical base; the CPU marks it
// busy in the GDT.
Emulation load_task_register(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  VirtualCpu& cpu = instruction.cpu();
  auto selector_read = instruction.read_selector_operand(instruction.operand(0));
  if (selector_read.fault) return instruction.reflect(*selector_read.fault);
  const std::uint16_t selector = selector_read.value;
  if (is_null_selector(selector) && (selector & kSelectorTableIndicator) == 0) {
    return instruction.general_protection();
  }
  auto loaded = present_system_descriptor(instruction, selector, kDescriptorTypeAvailableTss);
  if (auto* failed = std::get_if<Emulation>(&loaded)) return std::move(*failed);
  const auto& tss = std::get<SegmentDescriptor>(loaded);
  if (!is_canonical(GuestVirtAddr(tss.base), cpu)) {
    return instruction.general_protection(selector_error(selector));
  }

  // The access byte (descriptor byte 5): P, DPL, S = 0, type 0xb (busy).
  const auto access = static_cast<std::uint8_t>(
      0x80 | (tss.privilege_level << 5) | kDescriptorTypeAvailableTss | kDescriptorTypeBusyFlag);
  const GuestVirtAddr access_address(cpu.gdtr.base + (selector & 0xfff8u) + 5);
  if (auto fault = instruction.memory().write(access_address, std::span(&access, 1),
                                              AccessPrivilege::Supervisor)) {
    return instruction.reflect(page_fault(*fault));
  }
  cpu.tr = selector;
  cpu.tss_base = tss.base;
  cpu.tss_limit = tss.limit;
  return instruction.completed();
}

// lldt r/m16 (Intel SDM vol. 2A LLDT): a null selector disables the LDT. The
// virtual CPU models no LDT contents, so a real LDT is checked as the CPU
// would and then reported unsupported.
Emulation load_local_descriptor_table(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  auto selector_read = instruction.read_selector_operand(instruction.operand(0));
  if (selector_read.fault) return instruction.reflect(*selector_read.fault);
  const std::uint16_t selector = selector_read.value;
  if (is_null_selector(selector) && (selector & kSelectorTableIndicator) == 0) {
    instruction.cpu().ldtr = selector;
    return instruction.completed();
  }
  auto loaded = present_system_descriptor(instruction, selector, kDescriptorTypeLdt);
  if (auto* failed = std::get_if<Emulation>(&loaded)) return std::move(*failed);
  return instruction.unsupported("the virtual CPU models no LDT (lldt " + hex(selector) + ")");
}

// --- MSRs ------------------------------------------------------------------------

// The virtual CPU has the MSRs of SYSCALL and of the FS/GS bases; any other
// index raises #GP(0), as for an MSR the CPU does not implement.
using MsrField = std::uint64_t VirtualCpu::*;
struct MsrEntry {
  std::uint32_t index;
  MsrField field;
};
constexpr std::array kVirtualMsrs{
    MsrEntry{kMsrEfer, &VirtualCpu::efer},
    MsrEntry{kMsrStar, &VirtualCpu::star},
    MsrEntry{kMsrLstar, &VirtualCpu::lstar},
    MsrEntry{kMsrCstar, &VirtualCpu::cstar},
    MsrEntry{kMsrFmask, &VirtualCpu::fmask},
    MsrEntry{kMsrFsBase, &VirtualCpu::fs_base},
    MsrEntry{kMsrGsBase, &VirtualCpu::gs_base},
    MsrEntry{kMsrKernelGsBase, &VirtualCpu::kernel_gs_base},
};

const MsrField* virtual_msr(std::uint32_t index) {
  for (const MsrEntry& entry : kVirtualMsrs) {
    if (entry.index == index) return &entry.field;
  }
  return nullptr;
}

Emulation missing_msr(Instruction& instruction, std::string_view mnemonic, std::uint32_t index) {
  Emulation emulation = instruction.general_protection();
  emulation.detail =
      std::string(mnemonic) + " of MSR " + hex(index) + ", which the virtual CPU lacks";
  return emulation;
}

// rdmsr/wrmsr (Intel SDM vol. 2B): CPL0; ECX names the MSR, EDX:EAX the value.
Emulation read_model_specific_register(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  GuestRegisters& registers = instruction.registers();
  const auto index = static_cast<std::uint32_t>(registers.rcx);
  const MsrField* field = virtual_msr(index);
  if (field == nullptr) return missing_msr(instruction, "rdmsr", index);
  const std::uint64_t value = instruction.cpu().*(*field);
  registers.rax = value & 0xffffffff;
  registers.rdx = value >> 32;
  return instruction.completed();
}

Emulation write_model_specific_register(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  VirtualCpu& cpu = instruction.cpu();
  const GuestRegisters& registers = instruction.registers();
  const auto index = static_cast<std::uint32_t>(registers.rcx);
  const std::uint64_t value = (registers.rdx << 32) | (registers.rax & 0xffffffff);
  const MsrField* field = virtual_msr(index);
  if (field == nullptr) return missing_msr(instruction, "wrmsr", index);
  switch (index) {
    case kMsrEfer: {
      if ((value & ~kEferWritable) != 0) return instruction.general_protection();
      // LME cannot change while paging is on; LMA is the CPU's, not writable.
      const std::uint64_t changed = (cpu.efer ^ value) & ~kEferLongModeActive;
      if ((changed & kEferLongModeEnable) != 0 && (cpu.cr0 & kCr0Paging) != 0) {
        return instruction.general_protection();
      }
      cpu.efer = (value & ~kEferLongModeActive) | (cpu.efer & kEferLongModeActive);
      if ((changed & kEferNoExecuteEnable) != 0) instruction.services().paging_control_changed();
      return instruction.completed();
    }
    case kMsrStar:
      break;
    case kMsrFmask:
      if ((value >> 32) != 0) return instruction.general_protection();  // bits 63:32 reserved
      break;
    default:
      // LSTAR, CSTAR and the bases hold addresses: they must be canonical.
      if (!is_canonical(GuestVirtAddr(value), cpu)) return instruction.general_protection();
      break;
  }
  cpu.*(*field) = value;
  return instruction.completed();
}

// Intel SDM vol. 2B SWAPGS: CPL0 only.
Emulation swap_gs(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  VirtualCpu& cpu = instruction.cpu();
  std::swap(cpu.gs_base, cpu.kernel_gs_base);
  return instruction.completed();
}

// --- Caches, TLB and counters --------------------------------------------------------

// invlpg m (Intel SDM vol. 2A INVLPG): CPL0; never faults on the address; a
// non-canonical address makes it a no-op.
Emulation invalidate_page(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  const GuestVirtAddr address = instruction.linear_address(instruction.operand(0));
  if (is_canonical(address, instruction.cpu())) instruction.services().page_invalidated(address);
  return instruction.completed();
}

// wbinvd/invd: CPL0 only; the virtual CPU has no caches of its own.
Emulation invalidate_caches(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode()) return instruction.general_protection();
  return instruction.completed();
}

// Intel SDM vol. 2B RDTSC: #GP(0) at CPL > 0 when CR4.TSD is set.
Emulation read_time_stamp_counter(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode() && (instruction.cpu().cr4 & kCr4TimeStampDisable) != 0) {
    return instruction.general_protection();
  }
  return instruction.unsupported(
      "the monitor keeps no time-stamp counter: run with the real CR4.TSD clear");
}

// Intel SDM vol. 2B RDPMC: #GP(0) at CPL > 0 unless CR4.PCE is set.
Emulation read_performance_counter(Instruction& instruction, const Event&) {
  if (!instruction.kernel_mode() && (instruction.cpu().cr4 & kCr4PerformanceCounterEnable) == 0) {
    return instruction.general_protection();
  }
  return instruction.unsupported("performance counters are not virtualized");
}

constexpr std::array kSystemStateOperations{
    Operation{ZYDIS_MNEMONIC_CLI, clear_interrupts},
    Operation{ZYDIS_MNEMONIC_STI, set_interrupts},
    Operation{ZYDIS_MNEMONIC_MOV, move, moves_system_register},
    Operation{ZYDIS_MNEMONIC_LMSW, load_machine_status_word},
    Operation{ZYDIS_MNEMONIC_SMSW, store_machine_status_word},
    Operation{ZYDIS_MNEMONIC_CLTS, clear_task_switched},
    Operation{ZYDIS_MNEMONIC_LGDT, load_global_descriptor_table},
    Operation{ZYDIS_MNEMONIC_LIDT, load_interrupt_descriptor_table},
    Operation{ZYDIS_MNEMONIC_SGDT, store_global_descriptor_table},
    Operation{ZYDIS_MNEMONIC_SIDT, store_interrupt_descriptor_table},
    Operation{ZYDIS_MNEMONIC_SLDT, store_local_descriptor_table},
    Operation{ZYDIS_MNEMONIC_STR, store_task_register},
    Operation{ZYDIS_MNEMONIC_LTR, load_task_register},
    Operation{ZYDIS_MNEMONIC_LLDT, load_local_descriptor_table},
    Operation{ZYDIS_MNEMONIC_RDMSR, read_model_specific_register},
    Operation{ZYDIS_MNEMONIC_WRMSR, write_model_specific_register},
    Operation{ZYDIS_MNEMONIC_SWAPGS, swap_gs},
    Operation{ZYDIS_MNEMONIC_INVLPG, invalidate_page},
    Operation{ZYDIS_MNEMONIC_WBINVD, invalidate_caches},
    Operation{ZYDIS_MNEMONIC_INVD, invalidate_caches},
    Operation{ZYDIS_MNEMONIC_RDTSC, read_time_stamp_counter},
    Operation{ZYDIS_MNEMONIC_RDTSCP, read_time_stamp_counter},
    Operation{ZYDIS_MNEMONIC_RDPMC, read_performance_counter},
};

}  // namespace

std::span<const Operation> system_state_operations() {
  return kSystemStateOperations;
}

}  // namespace vmlab::full::detail
