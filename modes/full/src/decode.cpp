// Decoding for the instruction emulator: fetching the instruction bytes at
// the virtual CPL, decoding prefixes, opcode, ModRM, SIB, displacement and
// immediate with Zydis (Intel SDM vol. 2A, chapter 2, "Instruction Format",
// and 2.2.1 for REX), the general registers by name with 64-bit mode's
// operand-size rules (vol. 1, 3.4.1.1), and memory operands: segment base,
// base + index * scale + displacement, RIP-relative addressing, the 0x67
// address-size prefix (vol. 1, 3.7.5) and the canonical check (vol. 1,
// 3.3.7.1).
#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <span>

#include "instruction.hpp"
#include "vmlab/address.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::full::detail {

using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

// --- Registers --------------------------------------------------------------

using RegisterField = std::uint64_t GuestRegisters::*;
struct RegisterEntry {
  ZydisRegister name;
  RegisterField field;
};
constexpr std::array<RegisterEntry, 16> kGeneralRegisters{{
    {ZYDIS_REGISTER_RAX, &GuestRegisters::rax},
    {ZYDIS_REGISTER_RCX, &GuestRegisters::rcx},
    {ZYDIS_REGISTER_RDX, &GuestRegisters::rdx},
    {ZYDIS_REGISTER_RBX, &GuestRegisters::rbx},
    {ZYDIS_REGISTER_RSP, &GuestRegisters::rsp},
    {ZYDIS_REGISTER_RBP, &GuestRegisters::rbp},
    {ZYDIS_REGISTER_RSI, &GuestRegisters::rsi},
    {ZYDIS_REGISTER_RDI, &GuestRegisters::rdi},
    {ZYDIS_REGISTER_R8, &GuestRegisters::r8},
    {ZYDIS_REGISTER_R9, &GuestRegisters::r9},
    {ZYDIS_REGISTER_R10, &GuestRegisters::r10},
    {ZYDIS_REGISTER_R11, &GuestRegisters::r11},
    {ZYDIS_REGISTER_R12, &GuestRegisters::r12},
    {ZYDIS_REGISTER_R13, &GuestRegisters::r13},
    {ZYDIS_REGISTER_R14, &GuestRegisters::r14},
    {ZYDIS_REGISTER_R15, &GuestRegisters::r15},
}};

using DataSegmentField = DataSegmentRegister VirtualCpu::*;
struct DataSegmentEntry {
  ZydisRegister name;
  DataSegmentField field;
};
constexpr std::array<DataSegmentEntry, 4> kDataSegmentRegisters{{
    {ZYDIS_REGISTER_DS, &VirtualCpu::ds},
    {ZYDIS_REGISTER_ES, &VirtualCpu::es},
    {ZYDIS_REGISTER_FS, &VirtualCpu::fs},
    {ZYDIS_REGISTER_GS, &VirtualCpu::gs},
}};

const DataSegmentField* data_segment_field(ZydisRegister segment) {
  for (const DataSegmentEntry& entry : kDataSegmentRegisters) {
    if (entry.name == segment) return &entry.field;
  }
  return nullptr;
}

bool is_high_byte_register(ZydisRegister name) {
  return name == ZYDIS_REGISTER_AH || name == ZYDIS_REGISTER_CH || name == ZYDIS_REGISTER_DH ||
         name == ZYDIS_REGISTER_BH;
}

// The 64-bit register that holds `name` (al, ax, eax, rax -> rax), or null
// if `name` is not a general-purpose register.
const RegisterField* register_field(ZydisRegister name) {
  const ZydisRegister enclosing =
      ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, name);
  for (const RegisterEntry& entry : kGeneralRegisters) {
    if (entry.name == enclosing) return &entry.field;
  }
  return nullptr;
}

unsigned register_bits(ZydisRegister name) {
  return ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LONG_64, name);
}

// --- Decoding ---------------------------------------------------------------

const ZydisDecoder& decoder() {
  static const ZydisDecoder instance = [] {
    ZydisDecoder created{};
    ZydisDecoderInit(&created, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return created;
  }();
  return instance;
}

const ZydisFormatter& formatter() {
  static const ZydisFormatter instance = [] {
    ZydisFormatter created{};
    ZydisFormatterInit(&created, ZYDIS_FORMATTER_STYLE_INTEL);
    return created;
  }();
  return instance;
}

}  // namespace

bool is_general_register(ZydisRegister name) {
  return register_field(name) != nullptr;
}

std::uint64_t read_register(const GuestRegisters& registers, ZydisRegister name) {
  const RegisterField* field = register_field(name);
  if (field == nullptr) return 0;
  const std::uint64_t value = registers.*(*field);
  if (is_high_byte_register(name)) return (value >> 8) & 0xff;
  return value & width_mask(register_bits(name));
}

void write_register(GuestRegisters& registers, ZydisRegister name, std::uint64_t value) {
  const RegisterField* field = register_field(name);
  if (field == nullptr) return;
  std::uint64_t& slot = registers.*(*field);
  if (is_high_byte_register(name)) {
    slot = (slot & ~std::uint64_t{0xff00}) | ((value & 0xff) << 8);
    return;
  }
  const unsigned bits = register_bits(name);
  if (bits >= 32) {
    slot = value & width_mask(bits);
  } else {
    slot = (slot & ~width_mask(bits)) | (value & width_mask(bits));
  }
}

std::uint16_t segment_selector(const VirtualCpu& cpu, ZydisRegister segment) {
  if (segment == ZYDIS_REGISTER_CS) return cpu.cs;
  if (segment == ZYDIS_REGISTER_SS) return cpu.ss;
  const DataSegmentField* field = data_segment_field(segment);
  return field != nullptr ? (cpu.*(*field)).selector : 0;
}

DataSegmentRegister* data_segment_register(VirtualCpu& cpu, ZydisRegister segment) {
  const DataSegmentField* field = data_segment_field(segment);
  return field != nullptr ? &(cpu.*(*field)) : nullptr;
}

// Only a fault on bytes the instruction actually needs counts, as on the
// CPU: an instruction that ends before an unmapped page runs.
OrFault<Decoded> fetch_and_decode(const GuestRegisters& registers, const VirtualCpu& cpu,
                                  GuestVirtualMemory& memory) {
  std::array<std::uint8_t, kMaximumInstructionLength> bytes{};
  const AccessPrivilege privilege = privilege_of(cpu.cpl);
  const std::size_t first_length = static_cast<std::size_t>(
      std::min<std::uint64_t>(kMaximumInstructionLength, kPageSize - (registers.rip % kPageSize)));
  const GuestVirtAddr rip(registers.rip);
  if (auto fault = memory.fetch(rip, std::span(bytes.data(), first_length), privilege)) {
    return {{}, page_fault(*fault)};
  }
  std::size_t available = first_length;
  std::optional<GuestVirtualMemory::Fault> second_page_fault;
  if (first_length < bytes.size()) {
    second_page_fault = memory.fetch(
        rip + first_length, std::span(bytes.data() + first_length, bytes.size() - first_length),
        privilege);
    if (!second_page_fault) available = bytes.size();
  }

  OrFault<Decoded> result;
  const ZyanStatus status = ZydisDecoderDecodeFull(
      &decoder(), bytes.data(), available, &result.value.instruction, result.value.operands.data());
  if (!ZYAN_SUCCESS(status)) {
    if (status == ZYDIS_STATUS_NO_MORE_DATA && second_page_fault) {
      result.fault = page_fault(*second_page_fault);
    } else if (status == ZYDIS_STATUS_INSTRUCTION_TOO_LONG || status == ZYDIS_STATUS_NO_MORE_DATA) {
      result.fault = exception(kVectorGeneralProtection, 0);  // longer than 15 bytes
    } else {
      result.fault = invalid_opcode_event();
    }
    return result;
  }
  std::array<char, 128> text{};
  if (ZYAN_SUCCESS(ZydisFormatterFormatInstruction(
          &formatter(), &result.value.instruction, result.value.operands.data(),
          result.value.instruction.operand_count_visible, text.data(), text.size(), registers.rip,
          nullptr))) {
    result.value.text = text.data();
  }
  return result;
}

// --- Operands and memory ----------------------------------------------------------

GuestVirtAddr Instruction::segment_base(ZydisRegister segment) const {
  if (segment == ZYDIS_REGISTER_FS) return GuestVirtAddr(m_cpu.fs_base);
  if (segment == ZYDIS_REGISTER_GS) return GuestVirtAddr(m_cpu.gs_base);
  return GuestVirtAddr(0);  // 64-bit mode: CS, DS, ES and SS have base 0 (Intel SDM vol. 3A, 3.4.4)
}

GuestVirtAddr Instruction::linear_address(const ZydisDecodedOperand& memory_operand) const {
  const auto& location = memory_operand.mem;
  std::uint64_t address = static_cast<std::uint64_t>(location.disp.value);
  if (location.base == ZYDIS_REGISTER_RIP || location.base == ZYDIS_REGISTER_EIP) {
    address += m_registers.rip + info().length;  // relative to the next instruction
  } else if (location.base != ZYDIS_REGISTER_NONE) {
    address += read_register(m_registers, location.base);
  }
  if (location.index != ZYDIS_REGISTER_NONE) {
    address += read_register(m_registers, location.index) * location.scale;
  }
  address &= address_mask();  // 0x67: 32-bit effective address, zero-extended
  return segment_base(location.segment) + address;
}

// A data address must be canonical: #SS(0) for stack references, #GP(0)
// otherwise (Intel SDM vol. 3A, 3.3.7.1 and 6.15 "Interrupt 12/13").
OrFault<GuestVirtAddr> Instruction::canonical_address(GuestVirtAddr address,
                                                      ZydisRegister segment) const {
  if (is_canonical(address, m_cpu)) return {address, std::nullopt};
  const std::uint8_t vector =
      segment == ZYDIS_REGISTER_SS ? kVectorStackFault : kVectorGeneralProtection;
  return {GuestVirtAddr(0), exception(vector, 0)};
}

OrFault<GuestVirtAddr> Instruction::effective_address(
    const ZydisDecodedOperand& memory_operand) const {
  return canonical_address(linear_address(memory_operand), memory_operand.mem.segment);
}

OrFault<std::uint64_t> Instruction::read_value(GuestVirtAddr address, unsigned size) {
  std::array<std::uint8_t, 8> bytes{};
  if (auto fault = m_memory.read(address, std::span(bytes.data(), size), data_privilege())) {
    return {0, page_fault(*fault)};
  }
  return {load_little_endian(std::span(bytes.data(), size)), std::nullopt};
}

std::optional<Event> Instruction::write_value(GuestVirtAddr address, unsigned size,
                                              std::uint64_t value) {
  std::array<std::uint8_t, 8> bytes{};
  store_little_endian(std::span(bytes.data(), size), value);
  if (auto fault = m_memory.write(address, std::span(bytes.data(), size), data_privilege())) {
    return page_fault(*fault);
  }
  return std::nullopt;
}

// Register, immediate (already sign-extended by Zydis) or memory source.
OrFault<std::uint64_t> Instruction::read_operand(const ZydisDecodedOperand& source, unsigned bits) {
  switch (source.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
      return {read_register(m_registers, source.reg.value) & width_mask(bits), std::nullopt};
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
      return {source.imm.value.u & width_mask(bits), std::nullopt};
    case ZYDIS_OPERAND_TYPE_MEMORY: {
      auto address = effective_address(source);
      if (address.fault) return {0, address.fault};
      return read_value(address.value, bits / 8);
    }
    case ZYDIS_OPERAND_TYPE_UNUSED:
    case ZYDIS_OPERAND_TYPE_POINTER:
      break;
  }
  return {0, invalid_opcode_event()};
}

OrFault<std::uint16_t> Instruction::read_selector_operand(const ZydisDecodedOperand& source) {
  auto value = read_operand(source, 16);
  return {static_cast<std::uint16_t>(value.value), value.fault};
}

std::optional<Event> Instruction::store_word(const ZydisDecodedOperand& destination,
                                             std::uint64_t value) {
  if (destination.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    write_register(m_registers, destination.reg.value, value & width_mask(destination.size));
    return std::nullopt;
  }
  auto address = effective_address(destination);
  if (address.fault) return address.fault;
  return write_value(address.value, 2, value);
}

// The whole access must be canonical, its first byte and its last (Intel SDM
// vol. 1, 3.3.7.1; vol. 2B PUSH and POP, "64-Bit Mode Exceptions": #SS(0)).
std::optional<Event> Instruction::push(std::uint64_t value, unsigned size) {
  const GuestVirtAddr address(m_registers.rsp - size);
  for (const GuestVirtAddr byte : {address, address + (size - 1)}) {
    if (auto fault = canonical_address(byte, ZYDIS_REGISTER_SS).fault) return fault;
  }
  if (auto fault = write_value(address, size, value)) return fault;
  m_registers.rsp = address.value();
  return std::nullopt;
}

OrFault<std::uint64_t> Instruction::pop(unsigned size) {
  const GuestVirtAddr address(m_registers.rsp);
  for (const GuestVirtAddr byte : {address, address + (size - 1)}) {
    if (auto fault = canonical_address(byte, ZYDIS_REGISTER_SS).fault) return {0, fault};
  }
  auto value = read_value(address, size);
  if (value.fault) return value;
  m_registers.rsp += size;
  return value;
}

}  // namespace vmlab::full::detail
