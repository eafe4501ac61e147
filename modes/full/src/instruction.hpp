// What the parts of the instruction emulator share (emulator.hpp is its
// public face): the decoded instruction, the guest's general registers by
// their Zydis names, and Instruction, one decoded instruction being carried
// out against the virtual CPU, with its operands, memory accesses and
// outcomes.
//
// Each instruction class lives in one file, with the table that names the
// handler of each of its mnemonics next to the handlers:
//   decode.cpp           fetching and decoding, registers, operand addressing
//   port_io.cpp          in, out, ins, outs and the TSS I/O permission bitmap
//   system_state.cpp     control and debug registers, MSRs, descriptor tables,
//                        segment loads, cli/sti and the other CPL0-only ones
//   control_transfer.cpp hlt, iretq, far ret, int3/int n, syscall, sysret
//   holes.cpp            the sensitive instructions that do not trap at CPL3:
//                        pushf, popf, push fs/gs, lar, lsl, verr, verw (mov
//                        from a segment register and sgdt, sidt, sldt, str,
//                        smsw are in system_state.cpp, with their siblings)
//   memory_write.cpp     stores to the write-protected page-table pages
//   emulator.cpp         the dispatch: whose handler an instruction gets
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "vmlab/address.hpp"
#include "vmlab/full/emulator.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/x86.hpp"

namespace vmlab::full::detail {

using monitor::AccessPrivilege;
using monitor::DataSegmentRegister;
using monitor::EventSource;
using monitor::OrFault;

constexpr std::size_t kMaximumInstructionLength = 15;  // Intel SDM vol. 2A, 2.3.11
// A rep string instruction is interruptible between iterations (Intel SDM
// vol. 2B REP): after this many the monitor resumes the guest with RIP still
// at the instruction and the registers updated, and the guest traps again.
constexpr std::uint64_t kMaximumStringIterations = 4096;

// --- Small helpers ------------------------------------------------------------

constexpr std::uint64_t width_mask(unsigned bits) {
  return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

constexpr bool is_null_selector(std::uint16_t selector) {
  return (selector & ~kSelectorPrivilegeMask) == 0;
}

// The error code of a fault that names a selector (Intel SDM vol. 3A, 6.13).
constexpr std::uint32_t selector_error(std::uint16_t selector) {
  return selector & 0xfffcu;
}

inline Event exception(std::uint8_t vector, std::uint32_t error_code) {
  return Event{vector, error_code, EventSource::Exception};
}

inline Event page_fault(const GuestVirtualMemory::Fault& fault) {
  return Event{kVectorPageFault, fault.error_code, EventSource::Exception, fault.address};
}

inline Event invalid_opcode_event() {
  return Event{kVectorInvalidOpcode, std::nullopt, EventSource::Exception};
}

constexpr AccessPrivilege privilege_of(std::uint8_t privilege_level) {
  return privilege_level == 3 ? AccessPrivilege::User : AccessPrivilege::Supervisor;
}

inline bool is_register_of_class(const ZydisDecodedOperand& operand,
                                 ZydisRegisterClass register_class) {
  return operand.type == ZYDIS_OPERAND_TYPE_REGISTER &&
         ZydisRegisterGetClass(operand.reg.value) == register_class;
}

// --- Registers (decode.cpp) ---------------------------------------------------

// Whether `name` is a general-purpose register (al ... r15).
bool is_general_register(ZydisRegister name);
std::uint64_t read_register(const GuestRegisters& registers, ZydisRegister name);
// Writes as the CPU does in 64-bit mode (Intel SDM vol. 1, 3.4.1.1): a 32-bit
// destination zero-extends into the full register; 8- and 16-bit ones merge.
void write_register(GuestRegisters& registers, ZydisRegister name, std::uint64_t value);
// The selector the guest believes `segment` (cs, ss, ds, es, fs or gs) holds.
std::uint16_t segment_selector(const VirtualCpu& cpu, ZydisRegister segment);
// DS, ES, FS or GS of the virtual CPU; null for CS, SS or anything else.
DataSegmentRegister* data_segment_register(VirtualCpu& cpu, ZydisRegister segment);

// --- Decoding (decode.cpp) ------------------------------------------------------

struct Decoded {
  ZydisDecodedInstruction instruction{};
  std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT> operands{};
  std::string text;  // Intel syntax
};

// Fetches up to 15 bytes at RIP with the virtual CPL's privilege and decodes
// them; the fault is what the CPU would raise for bytes that cannot be
// fetched (#PF), are too long (#GP(0)) or do not decode (#UD).
OrFault<Decoded> fetch_and_decode(const GuestRegisters& registers, const VirtualCpu& cpu,
                                  GuestVirtualMemory& memory);

// --- One instruction being emulated ---------------------------------------------

class Instruction {
 public:
  // `services` may be null for callers that emulate nothing that needs them
  // (stores to page tables, iretq).
  Instruction(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
              const Decoded& decoded, MonitorServices* services)
      : m_registers(registers),
        m_cpu(cpu),
        m_memory(memory),
        m_decoded(decoded),
        m_services(services) {}

  GuestRegisters& registers() { return m_registers; }
  VirtualCpu& cpu() { return m_cpu; }
  const VirtualCpu& cpu() const { return m_cpu; }
  GuestVirtualMemory& memory() { return m_memory; }
  MonitorServices& services() { return *m_services; }
  const Decoded& decoded() const { return m_decoded; }
  const ZydisDecodedInstruction& info() const { return m_decoded.instruction; }
  const ZydisDecodedOperand& operand(std::size_t index) const { return m_decoded.operands[index]; }

  // Outcomes.
  Emulation outcome(EmulationKind kind) const {
    Emulation emulation;
    emulation.kind = kind;
    emulation.mnemonic = m_decoded.text;
    emulation.instruction_length = info().length;
    return emulation;
  }
  // The instruction completed: RIP moves past it and RF clears (Intel SDM
  // vol. 3A, 18.3.1.1: RF is cleared after any instruction completes).
  Emulation completed() {
    m_registers.rip += info().length;
    m_registers.rflags &= ~kRflagsResume;
    return outcome(EmulationKind::Emulated);
  }
  // The handler set RIP itself (control transfer), or left it on an
  // interrupted rep instruction.
  Emulation transferred() {
    m_registers.rflags &= ~kRflagsResume;
    return outcome(EmulationKind::Emulated);
  }
  Emulation reflect(const Event& event) const {
    Emulation emulation = outcome(EmulationKind::Reflect);
    emulation.event = event;
    return emulation;
  }
  Emulation general_protection(std::uint32_t error_code = 0) const {
    return reflect(exception(kVectorGeneralProtection, error_code));
  }
  Emulation unsupported(std::string detail) const {
    Emulation emulation = outcome(EmulationKind::Unsupported);
    emulation.detail = std::move(detail);
    return emulation;
  }

  // The virtual CPU's mode.
  bool kernel_mode() const { return m_cpu.cpl == 0; }
  AccessPrivilege data_privilege() const { return privilege_of(m_cpu.cpl); }
  void set_interrupt_flag(bool enabled) {
    m_cpu.interrupt_flag = enabled;
    if (enabled) {
      m_registers.rflags |= kRflagsInterrupt;
    } else {
      m_registers.rflags &= ~kRflagsInterrupt;
    }
  }

  // Prefixes: the address size (0x67) and rep/repe/repne.
  std::uint64_t address_mask() const { return width_mask(info().address_width); }
  bool has_repeat_prefix() const {
    return (info().attributes &
            (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE)) != 0;
  }

  // Operands and memory (decode.cpp).
  // The base of `segment` (FS and GS only, in 64-bit mode), to which an
  // offset in a register is added: the step where a register becomes an
  // address.
  GuestVirtAddr segment_base(ZydisRegister segment) const;
  GuestVirtAddr linear_address(const ZydisDecodedOperand& memory_operand) const;
  OrFault<GuestVirtAddr> effective_address(const ZydisDecodedOperand& memory_operand) const;
  OrFault<GuestVirtAddr> canonical_address(GuestVirtAddr address, ZydisRegister segment) const;
  OrFault<std::uint64_t> read_value(GuestVirtAddr address, unsigned size);
  std::optional<Event> write_value(GuestVirtAddr address, unsigned size, std::uint64_t value);
  OrFault<std::uint64_t> read_operand(const ZydisDecodedOperand& source, unsigned bits);
  OrFault<std::uint16_t> read_selector_operand(const ZydisDecodedOperand& source);
  // A register destination gets `value` truncated to its size, by the 64-bit
  // mode rules of write_register; a memory destination gets its low 16 bits
  // (Intel SDM vol. 2B MOV from a segment register, SLDT, STR, SMSW).
  std::optional<Event> store_word(const ZydisDecodedOperand& destination, std::uint64_t value);

  // The stack (Intel SDM vol. 1, 6.2): in 64-bit mode RSP is 64 bits wide
  // whatever the address size, and a stack address that is not canonical is
  // #SS(0). push stores `size` bytes below RSP, then moves RSP; pop reads them
  // at RSP, then moves RSP past them. A fault changes nothing.
  std::optional<Event> push(std::uint64_t value, unsigned size);
  OrFault<std::uint64_t> pop(unsigned size);

 private:
  GuestRegisters& m_registers;
  VirtualCpu& m_cpu;
  GuestVirtualMemory& m_memory;
  const Decoded& m_decoded;
  MonitorServices* m_services;
};

// Fetches and decodes the instruction at RIP and hands it to `emulate`; bytes
// that cannot be fetched or do not decode are reflected as the CPU would.
template <typename Emulate>
Emulation decode_and_emulate(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                             MonitorServices* services, Emulate&& emulate) {
  const auto decoded = fetch_and_decode(registers, cpu, memory);
  if (decoded.fault) {
    Emulation emulation;
    emulation.kind = EmulationKind::Reflect;
    emulation.event = *decoded.fault;
    emulation.detail = "the instruction at RIP does not decode";
    return emulation;
  }
  Instruction instruction(registers, cpu, memory, decoded.value, services);
  return std::forward<Emulate>(emulate)(instruction);
}

// --- The privileged and sensitive instructions --------------------------------------

// One mnemonic emulate_privileged carries out: the handler, and where the
// mnemonic alone does not decide (mov, ret), which forms it takes; the
// others reach emulate_privileged only because they faulted on their own.
struct Operation {
  ZydisMnemonic mnemonic = ZYDIS_MNEMONIC_INVALID;
  Emulation (*emulate)(Instruction& instruction, const Event& trap) = nullptr;
  bool (*applies)(const Decoded& decoded) = nullptr;  // nullptr: every form
};

// Each class's table, in the file of its handlers. A mnemonic is in one table.
std::span<const Operation> port_io_operations();           // port_io.cpp
std::span<const Operation> system_state_operations();      // system_state.cpp
std::span<const Operation> control_transfer_operations();  // control_transfer.cpp
std::span<const Operation> hole_operations();              // holes.cpp

}  // namespace vmlab::full::detail
