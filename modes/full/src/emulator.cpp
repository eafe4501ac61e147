// The dispatch of emulate_privileged (emulator.hpp): an instruction that
// trapped is looked up in the tables of the instruction classes, each in the
// file of its handlers (instruction.hpp lists them). One the tables do not
// name either faulted on its own account, and its trap is the guest's, or
// is privileged or sensitive (Intel SDM vol. 3A, 2.8 and 5.9; Robin &
// Irvine's list of the x86 sensitive instructions) and not emulated here.
#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <span>

#include "instruction.hpp"

namespace vmlab::full {

namespace detail {
namespace {

// The operation for a decoded instruction, or null if the emulator does not
// treat it specially.
const Operation* find_operation(const Decoded& decoded) {
  for (const std::span<const Operation> table :
       {port_io_operations(), system_state_operations(), control_transfer_operations(),
        hole_operations()}) {
    for (const Operation& operation : table) {
      if (operation.mnemonic != decoded.instruction.mnemonic) continue;
      if (operation.applies != nullptr && !operation.applies(decoded)) return nullptr;
      return &operation;
    }
  }
  return nullptr;
}

// Instructions that may trap at CPL3 for reasons of privilege, beyond those
// Zydis marks privileged: far transfers through descriptors, segment pops,
// CPUID faulting, SYSENTER/SYSEXIT, MONITOR/MWAIT. (The holes never trap;
// their operations, in holes.cpp, are carried out whenever the monitor asks.)
bool is_sensitive(const Decoded& decoded) {
  const ZydisDecodedInstruction& instruction = decoded.instruction;
  if ((instruction.attributes & ZYDIS_ATTRIB_IS_PRIVILEGED) != 0) return true;
  if (instruction.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return true;
  if (instruction.mnemonic == ZYDIS_MNEMONIC_POP &&
      is_register_of_class(decoded.operands[0], ZYDIS_REGCLASS_SEGMENT)) {
    return true;
  }
  constexpr std::array kSensitive{ZYDIS_MNEMONIC_CPUID, ZYDIS_MNEMONIC_SYSENTER,
                                  ZYDIS_MNEMONIC_SYSEXIT, ZYDIS_MNEMONIC_MONITOR,
                                  ZYDIS_MNEMONIC_MWAIT};
  return std::find(kSensitive.begin(), kSensitive.end(), instruction.mnemonic) != kSensitive.end();
}

Emulation privileged(Instruction& instruction, const Event& trap) {
  const Operation* operation = find_operation(instruction.decoded());
  if (operation == nullptr) {
    // At virtual CPL3 the real CPU ran at the same privilege: its trap is
    // the answer. In virtual kernel mode, an instruction that is not
    // sensitive faulted on its own account (a bad address, ud2...).
    if (!instruction.kernel_mode() || !is_sensitive(instruction.decoded())) {
      return instruction.reflect(trap);
    }
    return instruction.unsupported("privileged instruction the monitor does not emulate");
  }
  return operation->emulate(instruction, trap);
}

}  // namespace
}  // namespace detail

Emulation emulate_privileged(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                             MonitorServices& services, const Event& trap) {
  return detail::decode_and_emulate(
      registers, cpu, memory, &services,
      [&trap](detail::Instruction& instruction) { return detail::privileged(instruction, trap); });
}

}  // namespace vmlab::full
