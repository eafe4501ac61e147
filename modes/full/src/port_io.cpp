// Port I/O for the instruction emulator: in and out (Intel SDM vol. 2A IN,
// vol. 2B OUT) and the string forms ins and outs with or without rep (vol.
// 2A INS, vol. 2B OUTS, REP), each allowed at CPL <= IOPL or where the TSS
// I/O permission bitmap clears every port it touches (vol. 1, 19.5 and
// 19.5.2). The real CPU runs the guest with IOPL 0 and no bitmap, so every
// port access of the guest traps here and reaches the board's devices
// through MonitorServices.
#include <Zydis/Zydis.h>

#include <array>

#include "instruction.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::full::detail {

using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

constexpr std::uint64_t kTssIoMapBaseOffset = 0x66;  // Intel SDM vol. 3A, 8.7

// At CPL > IOPL every byte of the port range must have a clear bit in the TSS
// I/O permission bitmap; the CPU reads two bytes of it, both within the TSS
// limit.
std::optional<Event> check_io_permission(Instruction& instruction, std::uint16_t port,
                                         unsigned size) {
  const VirtualCpu& cpu = instruction.cpu();
  if (cpu.cpl <= cpu.iopl) return std::nullopt;
  const Event denied = exception(kVectorGeneralProtection, 0);
  if (kTssIoMapBaseOffset + 1 > cpu.tss_limit) return denied;
  std::array<std::uint8_t, 2> bytes{};
  const GuestVirtAddr tss(cpu.tss_base);
  if (auto fault = instruction.memory().read(tss + kTssIoMapBaseOffset, bytes,
                                             AccessPrivilege::Supervisor)) {
    return page_fault(*fault);
  }
  const std::uint64_t bitmap_offset = load_little_endian(bytes) + port / 8;
  if (bitmap_offset + 1 > cpu.tss_limit) return denied;
  if (auto fault =
          instruction.memory().read(tss + bitmap_offset, bytes, AccessPrivilege::Supervisor)) {
    return page_fault(*fault);
  }
  const std::uint64_t bits = load_little_endian(bytes) >> (port % 8);
  if ((bits & width_mask(size)) != 0) return denied;
  return std::nullopt;
}

// The port of in and out: an imm8, or DX.
std::uint16_t port_number(Instruction& instruction, const ZydisDecodedOperand& port) {
  return static_cast<std::uint16_t>(port.type == ZYDIS_OPERAND_TYPE_IMMEDIATE
                                        ? port.imm.value.u
                                        : read_register(instruction.registers(), port.reg.value));
}

// in al/ax/eax, imm8 | dx.
Emulation port_input(Instruction& instruction, const Event&) {
  const ZydisDecodedOperand& data = instruction.operand(0);
  const std::uint16_t port = port_number(instruction, instruction.operand(1));
  const unsigned size = data.size / 8;
  if (auto fault = check_io_permission(instruction, port, size)) return instruction.reflect(*fault);
  const std::uint32_t value = instruction.services().port_read(port, size);
  write_register(instruction.registers(), data.reg.value, value & width_mask(data.size));
  return instruction.completed();
}

// out imm8 | dx, al/ax/eax.
Emulation port_output(Instruction& instruction, const Event&) {
  const std::uint16_t port = port_number(instruction, instruction.operand(0));
  const ZydisDecodedOperand& data = instruction.operand(1);
  const unsigned size = data.size / 8;
  if (auto fault = check_io_permission(instruction, port, size)) return instruction.reflect(*fault);
  instruction.services().port_write(
      port, size,
      static_cast<std::uint32_t>(read_register(instruction.registers(), data.reg.value)));
  return instruction.completed();
}

enum class Direction { Input, Output };

// ins/outs with or without rep: ES:RDI or seg:RSI, step by DF, count in RCX.
// A fault stops the instruction with the registers describing the elements
// already done and RIP on it, so the guest's handler can resume it; an ins
// datum read from the port before its store faulted is lost, as on hardware.
Emulation string_input_output(Instruction& instruction, Direction direction) {
  GuestRegisters& registers = instruction.registers();
  MonitorServices& services = instruction.services();
  const bool input = direction == Direction::Input;
  const unsigned size = instruction.info().operand_width / 8;
  const auto port = static_cast<std::uint16_t>(registers.rdx);
  if (auto fault = check_io_permission(instruction, port, size)) return instruction.reflect(*fault);
  const bool repeat = instruction.has_repeat_prefix();
  const std::uint64_t mask = instruction.address_mask();
  const bool down = (registers.rflags & kRflagsDirection) != 0;
  std::uint64_t& index = input ? registers.rdi : registers.rsi;
  const ZydisDecodedOperand& memory_operand =
      input ? instruction.operand(0) : instruction.operand(1);

  for (std::uint64_t iteration = 0;; ++iteration) {
    if (repeat && (registers.rcx & mask) == 0) break;
    if (iteration == kMaximumStringIterations) return instruction.transferred();
    auto address = instruction.canonical_address(
        instruction.segment_base(memory_operand.mem.segment) + (index & mask),
        memory_operand.mem.segment);
    if (address.fault) return instruction.reflect(*address.fault);
    if (input) {
      const std::uint32_t value = services.port_read(port, size);
      if (auto fault = instruction.write_value(address.value, size, value)) {
        return instruction.reflect(*fault);
      }
    } else {
      auto value = instruction.read_value(address.value, size);
      if (value.fault) return instruction.reflect(*value.fault);
      services.port_write(port, size, static_cast<std::uint32_t>(value.value));
    }
    // With a 32-bit address size the index and count are ESI/EDI/ECX, whose
    // writes zero-extend (Intel SDM vol. 1, 3.3.7 and 3.4.1.1).
    index = (down ? index - size : index + size) & mask;
    if (!repeat) break;
    registers.rcx = (registers.rcx - 1) & mask;
  }
  return instruction.completed();
}

Emulation string_input(Instruction& instruction, const Event&) {
  return string_input_output(instruction, Direction::Input);
}

Emulation string_output(Instruction& instruction, const Event&) {
  return string_input_output(instruction, Direction::Output);
}

constexpr std::array kPortIoOperations{
    Operation{ZYDIS_MNEMONIC_IN, port_input},       Operation{ZYDIS_MNEMONIC_OUT, port_output},
    Operation{ZYDIS_MNEMONIC_INSB, string_input},   Operation{ZYDIS_MNEMONIC_INSW, string_input},
    Operation{ZYDIS_MNEMONIC_INSD, string_input},   Operation{ZYDIS_MNEMONIC_OUTSB, string_output},
    Operation{ZYDIS_MNEMONIC_OUTSW, string_output}, Operation{ZYDIS_MNEMONIC_OUTSD, string_output},
};

}  // namespace

std::span<const Operation> port_io_operations() {
  return kPortIoOperations;
}

}  // namespace vmlab::full::detail
