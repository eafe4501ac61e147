// The shadow pager's memory-write emulation (DESIGN.md 4, the "ptemod"
// cost): the guest kernel stored to one of its own page-table pages, which
// the shadow maps read-only, and the real CPU took a #PF. The monitor decodes
// the store and performs it through GuestVirtualMemory::write, which checks
// the guest's own tables and bypasses the shadow's protection, so the pager
// learns which bytes changed. The stores are the ones kernels use on page
// tables: mov, xchg, add, sub, and, or, xor, cmpxchg with a memory
// destination (Intel SDM vol. 2A/2B, each instruction's page; the flags of
// vol. 1, 3.4.3.1), and stos/movs with or without rep (vol. 2B STOS, MOVS,
// REP).
#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "instruction.hpp"

namespace vmlab::full {

using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace detail {
namespace {

enum class StoreOperation {
  Move,
  Exchange,
  Add,
  Subtract,
  And,
  Or,
  Xor,
  CompareExchange,
  StoreString,
  MoveString
};

struct StoreEntry {
  ZydisMnemonic mnemonic;
  StoreOperation operation;
  unsigned string_size;  // bytes per element for stos/movs, 0 otherwise
};

constexpr std::array kStores{
    StoreEntry{ZYDIS_MNEMONIC_MOV, StoreOperation::Move, 0},
    StoreEntry{ZYDIS_MNEMONIC_XCHG, StoreOperation::Exchange, 0},
    StoreEntry{ZYDIS_MNEMONIC_ADD, StoreOperation::Add, 0},
    StoreEntry{ZYDIS_MNEMONIC_SUB, StoreOperation::Subtract, 0},
    StoreEntry{ZYDIS_MNEMONIC_AND, StoreOperation::And, 0},
    StoreEntry{ZYDIS_MNEMONIC_OR, StoreOperation::Or, 0},
    StoreEntry{ZYDIS_MNEMONIC_XOR, StoreOperation::Xor, 0},
    StoreEntry{ZYDIS_MNEMONIC_CMPXCHG, StoreOperation::CompareExchange, 0},
    StoreEntry{ZYDIS_MNEMONIC_STOSB, StoreOperation::StoreString, 1},
    StoreEntry{ZYDIS_MNEMONIC_STOSW, StoreOperation::StoreString, 2},
    StoreEntry{ZYDIS_MNEMONIC_STOSD, StoreOperation::StoreString, 4},
    StoreEntry{ZYDIS_MNEMONIC_STOSQ, StoreOperation::StoreString, 8},
    StoreEntry{ZYDIS_MNEMONIC_MOVSB, StoreOperation::MoveString, 1},
    StoreEntry{ZYDIS_MNEMONIC_MOVSW, StoreOperation::MoveString, 2},
    StoreEntry{ZYDIS_MNEMONIC_MOVSD, StoreOperation::MoveString, 4},  // not SSE movsd: see below
    StoreEntry{ZYDIS_MNEMONIC_MOVSQ, StoreOperation::MoveString, 8},
};

// Arithmetic flags of add/sub/logic results (Intel SDM vol. 1, 3.4.3.1 and
// the ADD, SUB, AND, OR, XOR, CMPXCHG pages of vol. 2).
enum class FlagsOperation { Add, Subtract, Logic };

std::uint64_t arithmetic_flags(std::uint64_t rflags, FlagsOperation operation, std::uint64_t left,
                               std::uint64_t right, std::uint64_t result, unsigned bits) {
  constexpr std::uint64_t kArithmetic = kRflagsCarry | kRflagsParity | kRflagsAuxiliaryCarry |
                                        kRflagsZero | kRflagsSign | kRflagsOverflow;
  const std::uint64_t mask = width_mask(bits);
  const std::uint64_t sign = std::uint64_t{1} << (bits - 1);
  left &= mask;
  right &= mask;
  result &= mask;
  rflags &= ~kArithmetic;
  if (result == 0) rflags |= kRflagsZero;
  if ((result & sign) != 0) rflags |= kRflagsSign;
  if (__builtin_parityll(result & 0xff) == 0) rflags |= kRflagsParity;
  switch (operation) {
    case FlagsOperation::Add:
      if (result < left) rflags |= kRflagsCarry;
      if (((left ^ result) & (right ^ result) & sign) != 0) rflags |= kRflagsOverflow;
      if (((left ^ right ^ result) & 0x10) != 0) rflags |= kRflagsAuxiliaryCarry;
      break;
    case FlagsOperation::Subtract:
      if (left < right) rflags |= kRflagsCarry;
      if (((left ^ right) & (left ^ result) & sign) != 0) rflags |= kRflagsOverflow;
      if (((left ^ right ^ result) & 0x10) != 0) rflags |= kRflagsAuxiliaryCarry;
      break;
    case FlagsOperation::Logic:
      break;  // CF = OF = 0; AF is undefined and left clear
  }
  return rflags;
}

// mov/xchg/add/sub/and/or/xor/cmpxchg with a memory destination. A locked
// form is atomic by construction here: one vCPU, stopped while the monitor
// runs.
Emulation store_to_memory(Instruction& instruction, StoreOperation operation) {
  GuestRegisters& registers = instruction.registers();
  const ZydisDecodedOperand* memory_operand = nullptr;
  const ZydisDecodedOperand* other = nullptr;
  for (std::size_t index = 0; index < 2; ++index) {
    const ZydisDecodedOperand& candidate = instruction.operand(index);
    if (candidate.type == ZYDIS_OPERAND_TYPE_MEMORY && memory_operand == nullptr) {
      memory_operand = &candidate;
    } else {
      other = &candidate;
    }
  }
  if (memory_operand == nullptr || other == nullptr ||
      memory_operand->mem.type != ZYDIS_MEMOP_TYPE_MEM) {
    return instruction.unsupported("not a store to memory");
  }
  if (operation != StoreOperation::Exchange && memory_operand != &instruction.operand(0)) {
    return instruction.unsupported("not a store to memory");
  }
  if (other->type == ZYDIS_OPERAND_TYPE_REGISTER && !is_general_register(other->reg.value)) {
    return instruction.unsupported("source is not a general-purpose register");
  }
  const unsigned bits = memory_operand->size;
  const unsigned size = bits / 8;
  if (size == 0 || size > 8) return instruction.unsupported("store size not emulated");

  auto address = instruction.effective_address(*memory_operand);
  if (address.fault) return instruction.reflect(*address.fault);
  auto source = instruction.read_operand(*other, bits);
  if (source.fault) return instruction.reflect(*source.fault);

  // Nothing changes in the guest unless the store succeeds.
  std::uint64_t stored = source.value;
  std::uint64_t rflags = registers.rflags;
  std::optional<std::pair<ZydisRegister, std::uint64_t>> register_result;
  auto combine = [&](FlagsOperation flags, std::uint64_t current, std::uint64_t result) {
    stored = result;
    rflags = arithmetic_flags(rflags, flags, current, source.value, result, bits);
  };
  if (operation != StoreOperation::Move) {
    auto old = instruction.read_value(address.value, size);
    if (old.fault) return instruction.reflect(*old.fault);
    const std::uint64_t current = old.value;
    switch (operation) {
      case StoreOperation::Move:
        break;
      case StoreOperation::Exchange:
        register_result = {other->reg.value, current};
        break;
      case StoreOperation::Add:
        combine(FlagsOperation::Add, current, current + source.value);
        break;
      case StoreOperation::Subtract:
        combine(FlagsOperation::Subtract, current, current - source.value);
        break;
      case StoreOperation::And:
        combine(FlagsOperation::Logic, current, current & source.value);
        break;
      case StoreOperation::Or:
        combine(FlagsOperation::Logic, current, current | source.value);
        break;
      case StoreOperation::Xor:
        combine(FlagsOperation::Logic, current, current ^ source.value);
        break;
      case StoreOperation::CompareExchange: {
        // Intel SDM vol. 2A CMPXCHG: compare the accumulator with the
        // destination; equal: store the source; else load the accumulator
        // (the CPU writes the old value back either way).
        const ZydisRegister accumulator = ZydisRegisterEncode(bits == 64   ? ZYDIS_REGCLASS_GPR64
                                                              : bits == 32 ? ZYDIS_REGCLASS_GPR32
                                                              : bits == 16 ? ZYDIS_REGCLASS_GPR16
                                                                           : ZYDIS_REGCLASS_GPR8,
                                                              0);
        const std::uint64_t expected = read_register(registers, accumulator);
        rflags = arithmetic_flags(rflags, FlagsOperation::Subtract, expected, current,
                                  expected - current, bits);
        if (expected == current) {
          stored = source.value;
        } else {
          stored = current;
          register_result = {accumulator, current};
        }
        break;
      }
      case StoreOperation::StoreString:
      case StoreOperation::MoveString:
        return instruction.unsupported("string store reached the wrong path");
    }
  }
  if (auto fault = instruction.write_value(address.value, size, stored)) {
    return instruction.reflect(*fault);
  }
  registers.rflags = rflags;
  if (register_result) write_register(registers, register_result->first, register_result->second);
  Emulation emulation = instruction.completed();
  emulation.written = {address.value, size};
  return emulation;
}

// stos/movs with or without rep, as string I/O (port_io.cpp): a fault leaves
// the registers at the element that faulted.
Emulation store_string(Instruction& instruction, StoreOperation operation, unsigned size) {
  GuestRegisters& registers = instruction.registers();
  const bool repeat = instruction.has_repeat_prefix();
  const std::uint64_t mask = instruction.address_mask();
  const bool down = (registers.rflags & kRflagsDirection) != 0;
  const ZydisRegister source_segment = operation == StoreOperation::MoveString
                                           ? instruction.operand(1).mem.segment
                                           : ZYDIS_REGISTER_DS;
  GuestVirtAddr lowest(~std::uint64_t{0});
  GuestVirtAddr highest(0);
  auto result_with_range = [&](Emulation emulation) {
    if (highest > lowest) emulation.written = {lowest, highest - lowest};
    return emulation;
  };

  for (std::uint64_t iteration = 0;; ++iteration) {
    if (repeat && (registers.rcx & mask) == 0) break;
    if (iteration == kMaximumStringIterations) return result_with_range(instruction.transferred());
    auto destination =
        instruction.canonical_address(GuestVirtAddr(registers.rdi & mask), ZYDIS_REGISTER_ES);
    if (destination.fault) return result_with_range(instruction.reflect(*destination.fault));
    std::uint64_t value = registers.rax;
    if (operation == StoreOperation::MoveString) {
      auto source = instruction.canonical_address(
          instruction.segment_base(source_segment) + (registers.rsi & mask), source_segment);
      if (source.fault) return result_with_range(instruction.reflect(*source.fault));
      auto loaded = instruction.read_value(source.value, size);
      if (loaded.fault) return result_with_range(instruction.reflect(*loaded.fault));
      value = loaded.value;
    }
    if (auto fault = instruction.write_value(destination.value, size, value)) {
      return result_with_range(instruction.reflect(*fault));
    }
    lowest = std::min(lowest, destination.value);
    highest = std::max(highest, destination.value + size);
    registers.rdi = (down ? registers.rdi - size : registers.rdi + size) & mask;
    if (operation == StoreOperation::MoveString) {
      registers.rsi = (down ? registers.rsi - size : registers.rsi + size) & mask;
    }
    if (!repeat) break;
    registers.rcx = (registers.rcx - 1) & mask;
  }
  return result_with_range(instruction.completed());
}

Emulation memory_write(Instruction& instruction) {
  const ZydisDecodedInstruction& decoded = instruction.info();
  for (const StoreEntry& entry : kStores) {
    if (entry.mnemonic != decoded.mnemonic) continue;
    // MOVSD is also the SSE scalar move (F2 0F 10/11); only the one-byte
    // opcode A5 is the string instruction.
    if (entry.string_size != 0 && decoded.opcode_map != ZYDIS_OPCODE_MAP_DEFAULT) break;
    if (entry.string_size != 0)
      return store_string(instruction, entry.operation, entry.string_size);
    return store_to_memory(instruction, entry.operation);
  }
  return instruction.unsupported("not a store the monitor emulates");
}

}  // namespace
}  // namespace detail

Emulation emulate_memory_write(GuestRegisters& registers, VirtualCpu& cpu,
                               GuestVirtualMemory& memory) {
  return detail::decode_and_emulate(registers, cpu, memory, nullptr, detail::memory_write);
}

}  // namespace vmlab::full
