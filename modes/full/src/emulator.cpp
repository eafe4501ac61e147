#include "vmlab/full/emulator.hpp"
#include "vmlab/format.hpp"

#include <Zydis/Zydis.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <span>
#include <utility>
#include <variant>

namespace vmlab::full {

// The monitor this technique is built on (modes/monitor/).
using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

constexpr std::size_t kMaximumInstructionLength = 15;  // Intel SDM vol. 2A, 2.3.11
constexpr std::uint64_t kPageSize = 4096;
// A rep string instruction is interruptible between iterations (Intel SDM
// vol. 2B REP): after this many the monitor resumes the guest with RIP still
// at the instruction and the registers updated, and the guest traps again.
constexpr std::uint64_t kMaximumStringIterations = 4096;

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

constexpr std::uint64_t kTssIoMapBaseOffset = 0x66;  // Intel SDM vol. 3A, 8.7

// --- Small helpers ----------------------------------------------------------

std::uint64_t width_mask(unsigned bits) {
  return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
}

std::uint64_t load_little_endian(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  for (std::size_t index = 0; index < bytes.size() && index < 8; ++index) {
    value |= std::uint64_t{bytes[index]} << (8 * index);
  }
  return value;
}

void store_little_endian(std::span<std::uint8_t> bytes, std::uint64_t value) {
  for (std::size_t index = 0; index < bytes.size(); ++index) {
    bytes[index] = static_cast<std::uint8_t>(index < 8 ? value >> (8 * index) : 0);
  }
}

bool is_null_selector(std::uint16_t selector) {
  return (selector & ~kSelectorPrivilegeMask) == 0;
}

std::uint32_t selector_error(std::uint16_t selector) {
  return selector & 0xfffcu;
}

Event exception(std::uint8_t vector, std::uint32_t error_code) {
  return Event{vector, error_code, EventSource::Exception};
}

Event page_fault(const GuestVirtualMemory::Fault& fault) {
  return Event{kVectorPageFault, fault.error_code, EventSource::Exception, fault.address};
}

Event invalid_opcode_event() {
  return Event{kVectorInvalidOpcode, std::nullopt, EventSource::Exception};
}

AccessPrivilege privilege_of(std::uint8_t privilege_level) {
  return privilege_level == 3 ? AccessPrivilege::User : AccessPrivilege::Supervisor;
}

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

std::uint64_t read_register(const GuestRegisters& registers, ZydisRegister name) {
  const RegisterField* field = register_field(name);
  if (field == nullptr) return 0;
  const std::uint64_t value = registers.*(*field);
  if (is_high_byte_register(name)) return (value >> 8) & 0xff;
  return value & width_mask(register_bits(name));
}

// Writes as the CPU does in 64-bit mode (Intel SDM vol. 1, 3.4.1.1): a 32-bit
// destination zero-extends into the full register; 8- and 16-bit ones merge.
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

// --- Decoding ---------------------------------------------------------------

struct Decoded {
  ZydisDecodedInstruction instruction{};
  std::array<ZydisDecodedOperand, ZYDIS_MAX_OPERAND_COUNT> operands{};
  std::string text;
};

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

// Fetches up to 15 bytes at RIP with the virtual CPL's privilege, as the CPU
// would: only a fault on bytes the instruction actually needs counts (an
// instruction that ends before an unmapped page runs).
OrFault<Decoded> fetch_and_decode(const GuestRegisters& registers, const VirtualCpu& cpu,
                                  GuestVirtualMemory& memory) {
  std::array<std::uint8_t, kMaximumInstructionLength> bytes{};
  const AccessPrivilege privilege = privilege_of(cpu.cpl);
  const std::size_t first_length = static_cast<std::size_t>(
      std::min<std::uint64_t>(kMaximumInstructionLength, kPageSize - (registers.rip % kPageSize)));
  if (auto fault = memory.fetch(registers.rip, std::span(bytes.data(), first_length), privilege)) {
    return {{}, page_fault(*fault)};
  }
  std::size_t available = first_length;
  std::optional<GuestVirtualMemory::Fault> second_page_fault;
  if (first_length < bytes.size()) {
    second_page_fault = memory.fetch(
        registers.rip + first_length,
        std::span(bytes.data() + first_length, bytes.size() - first_length), privilege);
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

Emulation reflect_without_instruction(const Event& event, std::string detail) {
  Emulation emulation;
  emulation.kind = EmulationKind::Reflect;
  emulation.event = event;
  emulation.detail = std::move(detail);
  return emulation;
}

// --- What the emulator knows ------------------------------------------------

enum class Operation {
  ClearInterrupts,
  SetInterrupts,
  Halt,
  PortInput,
  PortOutput,
  StringInput,
  StringOutput,
  Move,  // to or from a control, debug or segment register (see classify)
  LoadGlobalDescriptorTable,
  LoadInterruptDescriptorTable,
  StoreGlobalDescriptorTable,
  StoreInterruptDescriptorTable,
  StoreLocalDescriptorTable,
  StoreTaskRegister,
  StoreMachineStatusWord,
  LoadMachineStatusWord,
  LoadTaskRegister,
  LoadLocalDescriptorTable,
  ReadModelSpecificRegister,
  WriteModelSpecificRegister,
  SwapGs,
  InvalidatePage,
  InterruptReturn,
  FarReturn,
  ClearTaskSwitched,
  InvalidateCaches,
  Breakpoint,
  SoftwareInterrupt,
  SystemCall,
  SystemReturn,
  ReadTimeStampCounter,
  ReadPerformanceCounter,
};

struct OperationEntry {
  ZydisMnemonic mnemonic;
  Operation operation;
};

constexpr std::array kOperations{
    OperationEntry{ZYDIS_MNEMONIC_CLI, Operation::ClearInterrupts},
    OperationEntry{ZYDIS_MNEMONIC_STI, Operation::SetInterrupts},
    OperationEntry{ZYDIS_MNEMONIC_HLT, Operation::Halt},
    OperationEntry{ZYDIS_MNEMONIC_IN, Operation::PortInput},
    OperationEntry{ZYDIS_MNEMONIC_OUT, Operation::PortOutput},
    OperationEntry{ZYDIS_MNEMONIC_INSB, Operation::StringInput},
    OperationEntry{ZYDIS_MNEMONIC_INSW, Operation::StringInput},
    OperationEntry{ZYDIS_MNEMONIC_INSD, Operation::StringInput},
    OperationEntry{ZYDIS_MNEMONIC_OUTSB, Operation::StringOutput},
    OperationEntry{ZYDIS_MNEMONIC_OUTSW, Operation::StringOutput},
    OperationEntry{ZYDIS_MNEMONIC_OUTSD, Operation::StringOutput},
    OperationEntry{ZYDIS_MNEMONIC_MOV, Operation::Move},
    OperationEntry{ZYDIS_MNEMONIC_LGDT, Operation::LoadGlobalDescriptorTable},
    OperationEntry{ZYDIS_MNEMONIC_LIDT, Operation::LoadInterruptDescriptorTable},
    OperationEntry{ZYDIS_MNEMONIC_SGDT, Operation::StoreGlobalDescriptorTable},
    OperationEntry{ZYDIS_MNEMONIC_SIDT, Operation::StoreInterruptDescriptorTable},
    OperationEntry{ZYDIS_MNEMONIC_SLDT, Operation::StoreLocalDescriptorTable},
    OperationEntry{ZYDIS_MNEMONIC_STR, Operation::StoreTaskRegister},
    OperationEntry{ZYDIS_MNEMONIC_SMSW, Operation::StoreMachineStatusWord},
    OperationEntry{ZYDIS_MNEMONIC_LMSW, Operation::LoadMachineStatusWord},
    OperationEntry{ZYDIS_MNEMONIC_LTR, Operation::LoadTaskRegister},
    OperationEntry{ZYDIS_MNEMONIC_LLDT, Operation::LoadLocalDescriptorTable},
    OperationEntry{ZYDIS_MNEMONIC_RDMSR, Operation::ReadModelSpecificRegister},
    OperationEntry{ZYDIS_MNEMONIC_WRMSR, Operation::WriteModelSpecificRegister},
    OperationEntry{ZYDIS_MNEMONIC_SWAPGS, Operation::SwapGs},
    OperationEntry{ZYDIS_MNEMONIC_INVLPG, Operation::InvalidatePage},
    OperationEntry{ZYDIS_MNEMONIC_IRET, Operation::InterruptReturn},
    OperationEntry{ZYDIS_MNEMONIC_IRETD, Operation::InterruptReturn},
    OperationEntry{ZYDIS_MNEMONIC_IRETQ, Operation::InterruptReturn},
    OperationEntry{ZYDIS_MNEMONIC_RET, Operation::FarReturn},
    OperationEntry{ZYDIS_MNEMONIC_CLTS, Operation::ClearTaskSwitched},
    OperationEntry{ZYDIS_MNEMONIC_WBINVD, Operation::InvalidateCaches},
    OperationEntry{ZYDIS_MNEMONIC_INVD, Operation::InvalidateCaches},
    OperationEntry{ZYDIS_MNEMONIC_INT3, Operation::Breakpoint},
    OperationEntry{ZYDIS_MNEMONIC_INT, Operation::SoftwareInterrupt},
    OperationEntry{ZYDIS_MNEMONIC_SYSCALL, Operation::SystemCall},
    OperationEntry{ZYDIS_MNEMONIC_SYSRET, Operation::SystemReturn},
    OperationEntry{ZYDIS_MNEMONIC_RDTSC, Operation::ReadTimeStampCounter},
    OperationEntry{ZYDIS_MNEMONIC_RDTSCP, Operation::ReadTimeStampCounter},
    OperationEntry{ZYDIS_MNEMONIC_RDPMC, Operation::ReadPerformanceCounter},
};

bool is_register_of_class(const ZydisDecodedOperand& operand, ZydisRegisterClass register_class) {
  return operand.type == ZYDIS_OPERAND_TYPE_REGISTER &&
         ZydisRegisterGetClass(operand.reg.value) == register_class;
}

// The operation for a decoded instruction, or nothing if the emulator does
// not treat it specially: mov counts only with a control or debug register,
// or a segment register as destination; ret only as a far return.
std::optional<Operation> classify(const Decoded& decoded) {
  const ZydisDecodedInstruction& instruction = decoded.instruction;
  for (const OperationEntry& entry : kOperations) {
    if (entry.mnemonic != instruction.mnemonic) continue;
    if (entry.operation == Operation::Move) {
      const auto& destination = decoded.operands[0];
      const auto& source = decoded.operands[1];
      const bool special = is_register_of_class(destination, ZYDIS_REGCLASS_CONTROL) ||
                           is_register_of_class(source, ZYDIS_REGCLASS_CONTROL) ||
                           is_register_of_class(destination, ZYDIS_REGCLASS_DEBUG) ||
                           is_register_of_class(source, ZYDIS_REGCLASS_DEBUG) ||
                           is_register_of_class(destination, ZYDIS_REGCLASS_SEGMENT);
      if (!special) return std::nullopt;
    }
    if (entry.operation == Operation::FarReturn &&
        instruction.meta.branch_type != ZYDIS_BRANCH_TYPE_FAR) {
      return std::nullopt;
    }
    return entry.operation;
  }
  return std::nullopt;
}

// Instructions that may trap at CPL3 for reasons of privilege, beyond those
// Zydis marks privileged: far transfers through descriptors, segment pops,
// CPUID faulting, SYSENTER/SYSEXIT, MONITOR/MWAIT. (lar, lsl, verr and verw
// never trap: they are among the x86 holes.)
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

// Stores emulate_memory_write knows.
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

// --- The emulator for one decoded instruction --------------------------------

class InstructionEmulator {
 public:
  InstructionEmulator(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                      const Decoded& decoded)
      : m_registers(registers), m_cpu(cpu), m_memory(memory), m_decoded(decoded) {}

  Emulation privileged(MonitorServices& services, const Event& trap);
  Emulation interrupt_return();
  Emulation memory_write();

 private:
  // Outcomes.
  Emulation outcome(EmulationKind kind) const {
    Emulation emulation;
    emulation.kind = kind;
    emulation.mnemonic = m_decoded.text;
    emulation.instruction_length = instruction().length;
    return emulation;
  }
  // The instruction completed: RIP moves past it and RF clears (Intel SDM
  // vol. 3A, 18.3.1.1: RF is cleared after any instruction completes).
  Emulation completed() {
    m_registers.rip += instruction().length;
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

  const ZydisDecodedInstruction& instruction() const { return m_decoded.instruction; }
  const ZydisDecodedOperand& operand(std::size_t index) const { return m_decoded.operands[index]; }
  bool kernel_mode() const { return m_cpu.cpl == 0; }
  AccessPrivilege data_privilege() const { return privilege_of(m_cpu.cpl); }
  std::uint64_t address_mask() const { return width_mask(instruction().address_width); }
  bool has_repeat_prefix() const {
    return (instruction().attributes &
            (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE | ZYDIS_ATTRIB_HAS_REPNE)) != 0;
  }
  void set_interrupt_flag(bool enabled) {
    m_cpu.interrupt_flag = enabled;
    if (enabled) {
      m_registers.rflags |= kRflagsInterrupt;
    } else {
      m_registers.rflags &= ~kRflagsInterrupt;
    }
  }

  // Operands and memory.
  std::uint64_t segment_base(ZydisRegister segment) const {
    if (segment == ZYDIS_REGISTER_FS) return m_cpu.fs_base;
    if (segment == ZYDIS_REGISTER_GS) return m_cpu.gs_base;
    return 0;  // 64-bit mode: CS, DS, ES and SS have base 0 (Intel SDM vol. 3A, 3.4.4)
  }
  std::uint64_t linear_address(const ZydisDecodedOperand& memory_operand) const;
  OrFault<std::uint64_t> effective_address(const ZydisDecodedOperand& memory_operand) const;
  OrFault<std::uint64_t> canonical_address(std::uint64_t address, ZydisRegister segment) const;
  OrFault<std::uint64_t> read_value(std::uint64_t address, unsigned size);
  std::optional<Event> write_value(std::uint64_t address, unsigned size, std::uint64_t value);
  OrFault<std::uint64_t> read_operand(const ZydisDecodedOperand& source, unsigned bits);
  OrFault<std::uint16_t> read_selector_operand(const ZydisDecodedOperand& source);
  std::optional<Event> check_io_permission(std::uint16_t port, unsigned size);

  // Privileged operations.
  Emulation interrupt_flag_instruction(bool enable);
  Emulation halt();
  std::uint16_t port_number(const ZydisDecodedOperand& port) const;
  Emulation port_input();
  Emulation port_output();
  Emulation string_input_output(Operation operation);
  Emulation move(const Event& trap);
  Emulation write_control_register(unsigned index, std::uint64_t value, MonitorServices& services);
  Emulation read_control_register(unsigned index, ZydisRegister destination);
  Emulation load_segment_register(ZydisRegister segment);
  Emulation load_descriptor_table(TableRegister& table);
  Emulation store_descriptor_table(const TableRegister& table);
  Emulation store_selector(std::uint16_t selector);
  Emulation store_machine_status_word();
  Emulation load_machine_status_word(MonitorServices& services);
  Emulation load_task_register();
  Emulation load_local_descriptor_table();
  std::variant<SegmentDescriptor, Emulation> present_system_descriptor(std::uint16_t selector,
                                                                       std::uint8_t type);
  Emulation read_model_specific_register();
  Emulation write_model_specific_register(MonitorServices& services);
  Emulation invalidate_page(MonitorServices& services);
  Emulation far_return();
  Emulation system_call();
  Emulation system_return();

  // Far returns (Intel SDM vol. 2A IRET, vol. 2B RET, IA-32e mode).
  OrFault<SegmentDescriptor> check_return_code_segment(std::uint16_t selector);
  std::optional<Event> check_return_stack_segment(std::uint16_t stack_selector,
                                                  std::uint16_t code_selector,
                                                  bool returns_to_64bit);

  Emulation store_to_memory(StoreOperation operation);
  Emulation store_string(StoreOperation operation, unsigned size);

  GuestRegisters& m_registers;
  VirtualCpu& m_cpu;
  GuestVirtualMemory& m_memory;
  const Decoded& m_decoded;
  MonitorServices* m_services = nullptr;
};

std::uint64_t InstructionEmulator::linear_address(const ZydisDecodedOperand& memory_operand) const {
  const auto& location = memory_operand.mem;
  std::uint64_t address = static_cast<std::uint64_t>(location.disp.value);
  if (location.base == ZYDIS_REGISTER_RIP || location.base == ZYDIS_REGISTER_EIP) {
    address += m_registers.rip + instruction().length;  // relative to the next instruction
  } else if (location.base != ZYDIS_REGISTER_NONE) {
    address += read_register(m_registers, location.base);
  }
  if (location.index != ZYDIS_REGISTER_NONE) {
    address += read_register(m_registers, location.index) * location.scale;
  }
  address &= address_mask();  // 0x67: 32-bit effective address, zero-extended
  return address + segment_base(location.segment);
}

// A data address must be canonical: #SS(0) for stack references, #GP(0)
// otherwise (Intel SDM vol. 3A, 3.3.7.1 and 6.15 "Interrupt 12/13").
OrFault<std::uint64_t> InstructionEmulator::canonical_address(std::uint64_t address,
                                                              ZydisRegister segment) const {
  if (is_canonical(address, m_cpu)) return {address, std::nullopt};
  const std::uint8_t vector =
      segment == ZYDIS_REGISTER_SS ? kVectorStackFault : kVectorGeneralProtection;
  return {0, exception(vector, 0)};
}

OrFault<std::uint64_t> InstructionEmulator::effective_address(
    const ZydisDecodedOperand& memory_operand) const {
  return canonical_address(linear_address(memory_operand), memory_operand.mem.segment);
}

OrFault<std::uint64_t> InstructionEmulator::read_value(std::uint64_t address, unsigned size) {
  std::array<std::uint8_t, 8> bytes{};
  if (auto fault = m_memory.read(address, std::span(bytes.data(), size), data_privilege())) {
    return {0, page_fault(*fault)};
  }
  return {load_little_endian(std::span(bytes.data(), size)), std::nullopt};
}

std::optional<Event> InstructionEmulator::write_value(std::uint64_t address, unsigned size,
                                                      std::uint64_t value) {
  std::array<std::uint8_t, 8> bytes{};
  store_little_endian(std::span(bytes.data(), size), value);
  if (auto fault = m_memory.write(address, std::span(bytes.data(), size), data_privilege())) {
    return page_fault(*fault);
  }
  return std::nullopt;
}

// Register, immediate (already sign-extended by Zydis) or memory source.
OrFault<std::uint64_t> InstructionEmulator::read_operand(const ZydisDecodedOperand& source,
                                                         unsigned bits) {
  switch (source.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER:
      return {read_register(m_registers, source.reg.value) & width_mask(bits), std::nullopt};
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
      return {source.imm.value.u & width_mask(bits), std::nullopt};
    case ZYDIS_OPERAND_TYPE_MEMORY: {
      auto address = effective_address(source);
      if (address.fault) return address;
      return read_value(address.value, bits / 8);
    }
    case ZYDIS_OPERAND_TYPE_UNUSED:
    case ZYDIS_OPERAND_TYPE_POINTER:
      break;
  }
  return {0, invalid_opcode_event()};
}

OrFault<std::uint16_t> InstructionEmulator::read_selector_operand(
    const ZydisDecodedOperand& source) {
  auto value = read_operand(source, 16);
  return {static_cast<std::uint16_t>(value.value), value.fault};
}

// Intel SDM vol. 1, 19.5 and 19.5.2: at CPL > IOPL every byte of the port
// range must have a clear bit in the TSS I/O permission bitmap; the CPU reads
// two bytes of it, both within the TSS limit.
std::optional<Event> InstructionEmulator::check_io_permission(std::uint16_t port, unsigned size) {
  if (m_cpu.cpl <= m_cpu.iopl) return std::nullopt;
  const Event denied = exception(kVectorGeneralProtection, 0);
  if (kTssIoMapBaseOffset + 1 > m_cpu.tss_limit) return denied;
  std::array<std::uint8_t, 2> bytes{};
  if (auto fault =
          m_memory.read(m_cpu.tss_base + kTssIoMapBaseOffset, bytes, AccessPrivilege::Supervisor)) {
    return page_fault(*fault);
  }
  const std::uint64_t bitmap_offset = load_little_endian(bytes) + port / 8;
  if (bitmap_offset + 1 > m_cpu.tss_limit) return denied;
  if (auto fault =
          m_memory.read(m_cpu.tss_base + bitmap_offset, bytes, AccessPrivilege::Supervisor)) {
    return page_fault(*fault);
  }
  const std::uint64_t bits = load_little_endian(bytes) >> (port % 8);
  if ((bits & width_mask(size)) != 0) return denied;
  return std::nullopt;
}

// --- cli, sti, hlt ------------------------------------------------------------

// Intel SDM vol. 2A CLI and vol. 2B STI, protected mode without VME/PVI
// (which do not apply in 64-bit mode): allowed at CPL <= IOPL, else #GP(0).
Emulation InstructionEmulator::interrupt_flag_instruction(bool enable) {
  if (m_cpu.cpl > m_cpu.iopl) return general_protection();
  const bool was_enabled = m_cpu.interrupt_flag;
  set_interrupt_flag(enable);
  Emulation emulation = completed();
  emulation.interrupt_shadow = enable && !was_enabled;
  return emulation;
}

Emulation InstructionEmulator::halt() {
  if (!kernel_mode()) return general_protection();
  m_registers.rip += instruction().length;
  m_registers.rflags &= ~kRflagsResume;
  m_cpu.halted = true;
  return outcome(EmulationKind::Halt);
}

// --- Port I/O -------------------------------------------------------------------

// The port of in and out: an imm8, or DX.
std::uint16_t InstructionEmulator::port_number(const ZydisDecodedOperand& port) const {
  return static_cast<std::uint16_t>(port.type == ZYDIS_OPERAND_TYPE_IMMEDIATE
                                        ? port.imm.value.u
                                        : read_register(m_registers, port.reg.value));
}

// in al/ax/eax, imm8 | dx (Intel SDM vol. 2A IN).
Emulation InstructionEmulator::port_input() {
  const ZydisDecodedOperand& data = operand(0);
  const std::uint16_t port = port_number(operand(1));
  const unsigned size = data.size / 8;
  if (auto fault = check_io_permission(port, size)) return reflect(*fault);
  const std::uint32_t value = m_services->port_read(port, size);
  write_register(m_registers, data.reg.value, value & width_mask(data.size));
  return completed();
}

// out imm8 | dx, al/ax/eax (Intel SDM vol. 2B OUT).
Emulation InstructionEmulator::port_output() {
  const std::uint16_t port = port_number(operand(0));
  const ZydisDecodedOperand& data = operand(1);
  const unsigned size = data.size / 8;
  if (auto fault = check_io_permission(port, size)) return reflect(*fault);
  m_services->port_write(port, size,
                         static_cast<std::uint32_t>(read_register(m_registers, data.reg.value)));
  return completed();
}

// ins/outs with or without rep (Intel SDM vol. 2A INS, vol. 2B OUTS, REP):
// ES:RDI or seg:RSI, step by DF, count in RCX. A fault stops the instruction
// with the registers describing the elements already done and RIP on it, so
// the guest's handler can resume it; an ins datum read from the port before
// its store faulted is lost, as on hardware.
Emulation InstructionEmulator::string_input_output(Operation operation) {
  const bool input = operation == Operation::StringInput;
  const unsigned size = instruction().operand_width / 8;
  const auto port = static_cast<std::uint16_t>(m_registers.rdx);
  if (auto fault = check_io_permission(port, size)) return reflect(*fault);
  const bool repeat = has_repeat_prefix();
  const std::uint64_t mask = address_mask();
  const bool down = (m_registers.rflags & kRflagsDirection) != 0;
  std::uint64_t& index = input ? m_registers.rdi : m_registers.rsi;
  const ZydisDecodedOperand& memory_operand = input ? operand(0) : operand(1);

  for (std::uint64_t iteration = 0;; ++iteration) {
    if (repeat && (m_registers.rcx & mask) == 0) break;
    if (iteration == kMaximumStringIterations) return transferred();
    auto address = canonical_address((index & mask) + segment_base(memory_operand.mem.segment),
                                     memory_operand.mem.segment);
    if (address.fault) return reflect(*address.fault);
    if (input) {
      const std::uint32_t value = m_services->port_read(port, size);
      if (auto fault = write_value(address.value, size, value)) return reflect(*fault);
    } else {
      auto value = read_value(address.value, size);
      if (value.fault) return reflect(*value.fault);
      m_services->port_write(port, size, static_cast<std::uint32_t>(value.value));
    }
    // With a 32-bit address size the index and count are ESI/EDI/ECX, whose
    // writes zero-extend (Intel SDM vol. 1, 3.3.7 and 3.4.1.1).
    index = (down ? index - size : index + size) & mask;
    if (!repeat) break;
    m_registers.rcx = (m_registers.rcx - 1) & mask;
  }
  return completed();
}

// --- mov to and from control, debug and segment registers -------------------------

Emulation InstructionEmulator::move(const Event& trap) {
  const ZydisDecodedOperand& destination = operand(0);
  const ZydisDecodedOperand& source = operand(1);
  if (is_register_of_class(destination, ZYDIS_REGCLASS_SEGMENT)) {
    return load_segment_register(destination.reg.value);
  }
  if (is_register_of_class(destination, ZYDIS_REGCLASS_DEBUG) ||
      is_register_of_class(source, ZYDIS_REGCLASS_DEBUG)) {
    if (!kernel_mode()) return reflect(trap);
    return unsupported("debug registers are not virtualized");
  }
  // Intel SDM vol. 2B MOV (Control Registers): CPL0 only; the general
  // register is always 64 bits wide in 64-bit mode.
  if (!kernel_mode()) return general_protection();
  if (is_register_of_class(destination, ZYDIS_REGCLASS_CONTROL)) {
    const auto index =
        static_cast<unsigned>(static_cast<std::uint8_t>(ZydisRegisterGetId(destination.reg.value)));
    return write_control_register(index, read_register(m_registers, source.reg.value), *m_services);
  }
  const auto index =
      static_cast<unsigned>(static_cast<std::uint8_t>(ZydisRegisterGetId(source.reg.value)));
  return read_control_register(index, destination.reg.value);
}

Emulation InstructionEmulator::read_control_register(unsigned index, ZydisRegister destination) {
  std::uint64_t value = 0;
  switch (index) {
    case 0:
      value = m_cpu.cr0;
      break;
    case 2:
      value = m_cpu.cr2;
      break;
    case 3:
      value = m_cpu.cr3;
      break;
    case 4:
      value = m_cpu.cr4;
      break;
    case 8:
      value = m_cpu.cr8;
      break;
    default:
      return reflect(invalid_opcode_event());  // CR1, CR5-CR7, CR9-CR15 do not exist
  }
  write_register(m_registers, destination, value);
  return completed();
}

// Intel SDM vol. 2B MOV (Control Registers) and vol. 3A 2.5: reserved bits
// and inconsistent combinations are #GP(0), and nothing changes.
Emulation InstructionEmulator::write_control_register(unsigned index, std::uint64_t value,
                                                      MonitorServices& services) {
  const bool long_mode = (m_cpu.efer & kEferLongModeActive) != 0;
  switch (index) {
    case 0: {
      if ((value >> 32) != 0) return general_protection();
      // Reserved bits 31:0 are ignored; ET is fixed to 1.
      value = (value & kCr0Defined) | kCr0ExtensionType;
      if ((value & kCr0Paging) != 0 && (value & kCr0ProtectionEnable) == 0) {
        return general_protection();
      }
      if ((value & kCr0NotWriteThrough) != 0 && (value & kCr0CacheDisable) == 0) {
        return general_protection();
      }
      // Leaving IA-32e mode is only possible from compatibility mode.
      if (long_mode && (value & kCr0Paging) == 0) return general_protection();
      if ((value & kCr0WriteProtect) == 0 && (m_cpu.cr4 & kCr4ControlFlowEnforcement) != 0) {
        return general_protection();
      }
      const std::uint64_t changed = m_cpu.cr0 ^ value;
      m_cpu.cr0 = value;
      if ((changed & kCr0PagingControl) != 0) services.paging_control_changed();
      return completed();
    }
    case 2:
      m_cpu.cr2 = value;
      return completed();
    case 3: {
      const bool process_context = (m_cpu.cr4 & kCr4ProcessContextIdentifiers) != 0;
      std::uint64_t reserved = kCr3ReservedHigh;
      if (!process_context) reserved |= kCr3NoInvalidate;
      if ((value & reserved) != 0) return general_protection();
      const std::uint64_t old_cr3 = m_cpu.cr3;
      m_cpu.cr3 = value & ~kCr3NoInvalidate;
      services.cr3_written(old_cr3, m_cpu.cr3);
      return completed();
    }
    case 4: {
      if ((value & ~kCr4Supported) != 0) return general_protection();
      const std::uint64_t changed = m_cpu.cr4 ^ value;
      if (long_mode && (value & kCr4PhysicalAddressExtension) == 0) return general_protection();
      if (long_mode && (changed & kCr4FiveLevelPaging) != 0) return general_protection();
      if ((value & kCr4ProcessContextIdentifiers) != 0 &&
          (m_cpu.cr4 & kCr4ProcessContextIdentifiers) == 0 && (m_cpu.cr3 & 0xfff) != 0) {
        return general_protection();
      }
      if ((value & kCr4ControlFlowEnforcement) != 0 && (m_cpu.cr0 & kCr0WriteProtect) == 0) {
        return general_protection();
      }
      m_cpu.cr4 = value;
      if ((changed & kCr4PagingControl) != 0) services.paging_control_changed();
      return completed();
    }
    case 8:
      if ((value & ~std::uint64_t{0xf}) != 0) return general_protection();  // TPR: bits 3:0
      m_cpu.cr8 = value;
      return completed();
    default:
      return reflect(invalid_opcode_event());
  }
}

// mov sreg, r/m16 in 64-bit mode (Intel SDM vol. 2B MOV, "Operation"; vol.
// 3A 5.5-5.7). The virtual CPU keeps SS, and FS/GS bases; DS and ES carry
// nothing in 64-bit mode once their checks pass.
Emulation InstructionEmulator::load_segment_register(ZydisRegister segment) {
  if (segment == ZYDIS_REGISTER_CS) return reflect(invalid_opcode_event());
  auto selector_read = read_selector_operand(operand(1));
  if (selector_read.fault) return reflect(*selector_read.fault);
  const std::uint16_t selector = selector_read.value;
  const auto requested = static_cast<std::uint8_t>(selector & kSelectorPrivilegeMask);

  if (segment == ZYDIS_REGISTER_SS) {
    if (is_null_selector(selector)) {
      // 64-bit mode allows a null SS below CPL3 when RPL = CPL.
      if (m_cpu.cpl == 3 || requested != m_cpu.cpl) return general_protection();
    } else {
      if (requested != m_cpu.cpl) return general_protection(selector_error(selector));
      auto descriptor = read_gdt_descriptor(m_cpu, m_memory, selector, DescriptorSize::Segment8);
      if (descriptor.fault) return reflect(*descriptor.fault);
      if (!descriptor.value.is_writable_data() || descriptor.value.privilege_level != m_cpu.cpl) {
        return general_protection(selector_error(selector));
      }
      if (!descriptor.value.present) {
        return reflect(exception(kVectorStackFault, selector_error(selector)));
      }
    }
    m_cpu.ss = selector;
    Emulation emulation = completed();
    emulation.interrupt_shadow = true;  // Intel SDM vol. 3A, 6.8.3
    return emulation;
  }

  std::uint64_t base = 0;
  if (!is_null_selector(selector)) {
    auto descriptor = read_gdt_descriptor(m_cpu, m_memory, selector, DescriptorSize::Segment8);
    if (descriptor.fault) return reflect(*descriptor.fault);
    const SegmentDescriptor& loaded = descriptor.value;
    if (!loaded.is_readable()) return general_protection(selector_error(selector));
    if (!loaded.is_conforming_code() &&
        (requested > loaded.privilege_level || m_cpu.cpl > loaded.privilege_level)) {
      return general_protection(selector_error(selector));
    }
    if (!loaded.present) {
      return reflect(exception(kVectorSegmentNotPresent, selector_error(selector)));
    }
    base = loaded.base & 0xffffffff;
  }
  // A selector load sets FS/GS base from the descriptor (32 bits); a null
  // selector clears it, as Intel CPUs do.
  if (segment == ZYDIS_REGISTER_FS) m_cpu.fs_base = base;
  if (segment == ZYDIS_REGISTER_GS) m_cpu.gs_base = base;
  return completed();
}

// --- Descriptor tables ---------------------------------------------------------

// lgdt/lidt m16&64 (Intel SDM vol. 2A LGDT/LIDT): CPL0; in 64-bit mode the
// operand is a 2-byte limit and an 8-byte base whatever the operand size.
Emulation InstructionEmulator::load_descriptor_table(TableRegister& table) {
  if (!kernel_mode()) return general_protection();
  auto address = effective_address(operand(0));
  if (address.fault) return reflect(*address.fault);
  std::array<std::uint8_t, 10> bytes{};
  if (auto fault = m_memory.read(address.value, bytes, data_privilege())) {
    return reflect(page_fault(*fault));
  }
  const std::uint64_t base = load_little_endian(std::span(bytes).subspan(2, 8));
  if (!is_canonical(base, m_cpu)) return general_protection();
  table.base = base;
  table.limit = static_cast<std::uint16_t>(load_little_endian(std::span(bytes).first(2)));
  return completed();
}

// sgdt/sidt/sldt/str/smsw only trap when the real CPU has CR4.UMIP set; the
// virtual CPU answers from its own state, or #GP(0) if the guest itself set
// UMIP and runs at CPL > 0 (Intel SDM vol. 3A, 2.5, CR4.UMIP).
Emulation InstructionEmulator::store_descriptor_table(const TableRegister& table) {
  if (!kernel_mode() && (m_cpu.cr4 & kCr4UserModeInstructionPrevention) != 0) {
    return general_protection();
  }
  auto address = effective_address(operand(0));
  if (address.fault) return reflect(*address.fault);
  std::array<std::uint8_t, 10> bytes{};
  store_little_endian(std::span(bytes).first(2), table.limit);
  store_little_endian(std::span(bytes).subspan(2, 8), table.base);
  if (auto fault = m_memory.write(address.value, bytes, data_privilege())) {
    return reflect(page_fault(*fault));
  }
  return completed();
}

// sldt/str: a register destination gets the selector zero-extended to the
// operand size; memory gets 16 bits (Intel SDM vol. 2B SLDT, STR).
Emulation InstructionEmulator::store_selector(std::uint16_t selector) {
  if (!kernel_mode() && (m_cpu.cr4 & kCr4UserModeInstructionPrevention) != 0) {
    return general_protection();
  }
  const ZydisDecodedOperand& destination = operand(0);
  if (destination.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    write_register(m_registers, destination.reg.value, selector);
    return completed();
  }
  auto address = effective_address(destination);
  if (address.fault) return reflect(*address.fault);
  if (auto fault = write_value(address.value, 2, selector)) return reflect(*fault);
  return completed();
}

Emulation InstructionEmulator::store_machine_status_word() {
  if (!kernel_mode() && (m_cpu.cr4 & kCr4UserModeInstructionPrevention) != 0) {
    return general_protection();
  }
  const ZydisDecodedOperand& destination = operand(0);
  if (destination.type == ZYDIS_OPERAND_TYPE_REGISTER) {
    write_register(m_registers, destination.reg.value, m_cpu.cr0 & width_mask(destination.size));
    return completed();
  }
  auto address = effective_address(destination);
  if (address.fault) return reflect(*address.fault);
  if (auto fault = write_value(address.value, 2, m_cpu.cr0)) return reflect(*fault);
  return completed();
}

// lmsw r/m16 (Intel SDM vol. 2A LMSW): loads CR0 bits 3:0; cannot clear PE.
Emulation InstructionEmulator::load_machine_status_word(MonitorServices& services) {
  if (!kernel_mode()) return general_protection();
  auto source = read_selector_operand(operand(0));
  if (source.fault) return reflect(*source.fault);
  const std::uint64_t value =
      (m_cpu.cr0 & ~std::uint64_t{0xf}) | (source.value & 0xf) | (m_cpu.cr0 & kCr0ProtectionEnable);
  const std::uint64_t changed = m_cpu.cr0 ^ value;
  m_cpu.cr0 = value;
  if ((changed & kCr0PagingControl) != 0) services.paging_control_changed();
  return completed();
}

// ltr r/m16 (Intel SDM vol. 2A LTR; vol. 3A 8.2.3): CPL0; an available
// 64-bit TSS in the GDT, 16 bytes, present, canonical base; the CPU marks it
// busy in the GDT.
Emulation InstructionEmulator::load_task_register() {
  if (!kernel_mode()) return general_protection();
  auto selector_read = read_selector_operand(operand(0));
  if (selector_read.fault) return reflect(*selector_read.fault);
  const std::uint16_t selector = selector_read.value;
  if (is_null_selector(selector) && (selector & kSelectorTableIndicator) == 0) {
    return general_protection();
  }
  auto loaded = present_system_descriptor(selector, kDescriptorTypeAvailableTss);
  if (auto* failed = std::get_if<Emulation>(&loaded)) return std::move(*failed);
  const auto& tss = std::get<SegmentDescriptor>(loaded);
  if (!is_canonical(tss.base, m_cpu)) return general_protection(selector_error(selector));

  // The access byte (descriptor byte 5): P, DPL, S = 0, type 0xb (busy).
  const auto access = static_cast<std::uint8_t>(
      0x80 | (tss.privilege_level << 5) | kDescriptorTypeAvailableTss | kDescriptorTypeBusyFlag);
  const std::uint64_t access_address = m_cpu.gdtr.base + (selector & 0xfff8u) + 5;
  if (auto fault =
          m_memory.write(access_address, std::span(&access, 1), AccessPrivilege::Supervisor)) {
    return reflect(page_fault(*fault));
  }
  m_cpu.tr = selector;
  m_cpu.tss_base = tss.base;
  m_cpu.tss_limit = tss.limit;
  return completed();
}

// The step ltr and lldt share (Intel SDM vol. 2A LTR, LLDT; vol. 3A 7.2.3):
// a 16-byte system descriptor of `type` in the GDT, whose upper type field is
// 0 in IA-32e mode (#GP otherwise), and present (#NP otherwise). The
// descriptor, or the emulation that reports why the instruction faults.
std::variant<SegmentDescriptor, Emulation> InstructionEmulator::present_system_descriptor(
    std::uint16_t selector, std::uint8_t type) {
  auto descriptor = read_gdt_descriptor(m_cpu, m_memory, selector, DescriptorSize::System16);
  if (descriptor.fault) return reflect(*descriptor.fault);
  const SegmentDescriptor& loaded = descriptor.value;
  if (!loaded.system || loaded.type != type || loaded.upper_type != 0) {
    return general_protection(selector_error(selector));
  }
  if (!loaded.present)
    return reflect(exception(kVectorSegmentNotPresent, selector_error(selector)));
  return loaded;
}

// lldt r/m16 (Intel SDM vol. 2A LLDT): a null selector disables the LDT. The
// virtual CPU models no LDT contents, so a real LDT is checked as the CPU
// would and then reported unsupported.
Emulation InstructionEmulator::load_local_descriptor_table() {
  if (!kernel_mode()) return general_protection();
  auto selector_read = read_selector_operand(operand(0));
  if (selector_read.fault) return reflect(*selector_read.fault);
  const std::uint16_t selector = selector_read.value;
  if (is_null_selector(selector) && (selector & kSelectorTableIndicator) == 0) {
    m_cpu.ldtr = selector;
    return completed();
  }
  auto loaded = present_system_descriptor(selector, kDescriptorTypeLdt);
  if (auto* failed = std::get_if<Emulation>(&loaded)) return std::move(*failed);
  return unsupported("the virtual CPU models no LDT (lldt " + hex(selector) + ")");
}

// --- MSRs ------------------------------------------------------------------------

// rdmsr/wrmsr (Intel SDM vol. 2B): CPL0; ECX names the MSR, EDX:EAX the value.
// The virtual CPU has the MSRs of SYSCALL and of the FS/GS bases; any other
// index raises #GP(0), as for an MSR the CPU does not implement.
Emulation InstructionEmulator::read_model_specific_register() {
  if (!kernel_mode()) return general_protection();
  const auto index = static_cast<std::uint32_t>(m_registers.rcx);
  std::uint64_t value = 0;
  switch (index) {
    case kMsrEfer:
      value = m_cpu.efer;
      break;
    case kMsrStar:
      value = m_cpu.star;
      break;
    case kMsrLstar:
      value = m_cpu.lstar;
      break;
    case kMsrCstar:
      value = m_cpu.cstar;
      break;
    case kMsrFmask:
      value = m_cpu.fmask;
      break;
    case kMsrFsBase:
      value = m_cpu.fs_base;
      break;
    case kMsrGsBase:
      value = m_cpu.gs_base;
      break;
    case kMsrKernelGsBase:
      value = m_cpu.kernel_gs_base;
      break;
    default: {
      Emulation emulation = general_protection();
      emulation.detail = "rdmsr of MSR " + hex(index) + ", which the virtual CPU lacks";
      return emulation;
    }
  }
  m_registers.rax = value & 0xffffffff;
  m_registers.rdx = value >> 32;
  return completed();
}

Emulation InstructionEmulator::write_model_specific_register(MonitorServices& services) {
  if (!kernel_mode()) return general_protection();
  const auto index = static_cast<std::uint32_t>(m_registers.rcx);
  const std::uint64_t value = (m_registers.rdx << 32) | (m_registers.rax & 0xffffffff);
  auto canonical_into = [&](std::uint64_t& field) {
    if (!is_canonical(value, m_cpu)) return general_protection();
    field = value;
    return completed();
  };
  switch (index) {
    case kMsrEfer: {
      if ((value & ~kEferWritable) != 0) return general_protection();
      // LME cannot change while paging is on; LMA is the CPU's, not writable.
      const std::uint64_t changed = (m_cpu.efer ^ value) & ~kEferLongModeActive;
      if ((changed & kEferLongModeEnable) != 0 && (m_cpu.cr0 & kCr0Paging) != 0) {
        return general_protection();
      }
      m_cpu.efer = (value & ~kEferLongModeActive) | (m_cpu.efer & kEferLongModeActive);
      if ((changed & kEferNoExecuteEnable) != 0) services.paging_control_changed();
      return completed();
    }
    case kMsrStar:
      m_cpu.star = value;
      return completed();
    case kMsrLstar:
      return canonical_into(m_cpu.lstar);
    case kMsrCstar:
      return canonical_into(m_cpu.cstar);
    case kMsrFmask:
      if ((value >> 32) != 0) return general_protection();  // bits 63:32 reserved
      m_cpu.fmask = value;
      return completed();
    case kMsrFsBase:
      return canonical_into(m_cpu.fs_base);
    case kMsrGsBase:
      return canonical_into(m_cpu.gs_base);
    case kMsrKernelGsBase:
      return canonical_into(m_cpu.kernel_gs_base);
    default: {
      Emulation emulation = general_protection();
      emulation.detail = "wrmsr of MSR " + hex(index) + ", which the virtual CPU lacks";
      return emulation;
    }
  }
}

// invlpg m (Intel SDM vol. 2A INVLPG): CPL0; never faults on the address; a
// non-canonical address makes it a no-op.
Emulation InstructionEmulator::invalidate_page(MonitorServices& services) {
  if (!kernel_mode()) return general_protection();
  const std::uint64_t address = linear_address(operand(0));
  if (is_canonical(address, m_cpu)) services.page_invalidated(address);
  return completed();
}

// --- Far returns -------------------------------------------------------------------

// The code-segment checks shared by IRET and far RET in IA-32e mode (Intel
// SDM vol. 2A IRET "IA-32e-MODE-RETURN", vol. 2B RET "Far return").
OrFault<SegmentDescriptor> InstructionEmulator::check_return_code_segment(std::uint16_t selector) {
  if (is_null_selector(selector) && (selector & kSelectorTableIndicator) == 0) {
    return {{}, exception(kVectorGeneralProtection, 0)};
  }
  auto descriptor = read_gdt_descriptor(m_cpu, m_memory, selector, DescriptorSize::Segment8);
  if (descriptor.fault) return descriptor;
  const SegmentDescriptor& code = descriptor.value;
  const auto requested = static_cast<std::uint8_t>(selector & kSelectorPrivilegeMask);
  const Event bad = exception(kVectorGeneralProtection, selector_error(selector));
  if (!code.is_code() || requested < m_cpu.cpl) return {{}, bad};
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
std::optional<Event> InstructionEmulator::check_return_stack_segment(std::uint16_t stack_selector,
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
  auto descriptor = read_gdt_descriptor(m_cpu, m_memory, stack_selector, DescriptorSize::Segment8);
  if (descriptor.fault) return descriptor.fault;
  if (!descriptor.value.is_writable_data() || descriptor.value.privilege_level != new_privilege) {
    return bad;
  }
  if (!descriptor.value.present) {
    return exception(kVectorStackFault, selector_error(stack_selector));
  }
  return std::nullopt;
}

// iretq/iretd in IA-32e mode (Intel SDM vol. 2A IRET): always pops RIP, CS,
// RFLAGS, RSP and SS.
Emulation InstructionEmulator::interrupt_return() {
  const unsigned slot = instruction().operand_width / 8;
  if (slot != 8 && slot != 4) return unsupported("16-bit iret is not emulated");
  if ((m_registers.rflags & kRflagsNestedTask) != 0) return general_protection();

  auto stack = canonical_address(m_registers.rsp, ZYDIS_REGISTER_SS);
  if (stack.fault) return reflect(*stack.fault);
  std::array<std::uint8_t, 40> bytes{};
  if (auto fault = m_memory.read(stack.value, std::span(bytes.data(), std::size_t{5} * slot),
                                 data_privilege())) {
    return reflect(page_fault(*fault));
  }
  auto popped = [&](unsigned index) {
    return load_little_endian(std::span(bytes.data() + std::size_t{index} * slot, slot));
  };
  const std::uint64_t new_rip = popped(0);
  const auto code_selector = static_cast<std::uint16_t>(popped(1));
  const std::uint64_t popped_rflags = popped(2);
  const std::uint64_t new_rsp = popped(3);
  const auto stack_selector = static_cast<std::uint16_t>(popped(4));

  if (!is_canonical(new_rip, m_cpu)) return general_protection();
  auto code = check_return_code_segment(code_selector);
  if (code.fault) return reflect(*code.fault);
  if (!code.value.is_64bit_code()) return unsupported("iret to compatibility mode");
  if (auto fault = check_return_stack_segment(stack_selector, code_selector, true)) {
    return reflect(*fault);
  }

  // RFLAGS: the always-loaded bits, then IF if CPL <= IOPL and IOPL, VIF and
  // VIP only at CPL0, both judged at the privilege the iret ran at.
  const std::uint8_t old_privilege = m_cpu.cpl;
  std::uint64_t loaded = kRflagsCarry | kRflagsParity | kRflagsAuxiliaryCarry | kRflagsZero |
                         kRflagsSign | kRflagsTrap | kRflagsDirection | kRflagsOverflow |
                         kRflagsNestedTask | kRflagsResume | kRflagsAlignmentCheck |
                         kRflagsIdentification;
  if (old_privilege <= m_cpu.iopl) loaded |= kRflagsInterrupt;
  if (old_privilege == 0) {
    loaded |= kRflagsIoplMask | kRflagsVirtualInterrupt | kRflagsVirtualInterruptPending;
  }
  const std::uint64_t current = guest_visible_rflags(m_registers, m_cpu);
  std::uint64_t rflags = (current & ~loaded) | (popped_rflags & loaded);
  // Only bits the guest can run with: RF and VM clear (the monitor resumes the
  // guest with an iretq of its own).
  rflags &= ~(kRflagsResume | kRflagsVirtual8086);
  set_guest_visible_rflags(m_registers, m_cpu, rflags);

  m_registers.rip = new_rip;
  m_registers.rsp = slot == 8 ? new_rsp : new_rsp & 0xffffffff;
  m_cpu.cs = code_selector;
  m_cpu.ss = stack_selector;
  m_cpu.cpl = static_cast<std::uint8_t>(code_selector & kSelectorPrivilegeMask);
  return outcome(EmulationKind::Emulated);
}

// ret far [imm16] (Intel SDM vol. 2B RET, protected mode far return): pops
// RIP and CS; to an outer privilege level also RSP and SS. The gdt_load of
// the vmlab guest reloads CS this way.
Emulation InstructionEmulator::far_return() {
  const unsigned slot = instruction().operand_width / 8;
  if (slot != 8 && slot != 4) return unsupported("16-bit far return is not emulated");
  std::uint64_t release = 0;
  if (operand(0).type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
      operand(0).visibility == ZYDIS_OPERAND_VISIBILITY_EXPLICIT) {
    release = operand(0).imm.value.u & 0xffff;
  }
  auto stack = canonical_address(m_registers.rsp, ZYDIS_REGISTER_SS);
  if (stack.fault) return reflect(*stack.fault);
  std::array<std::uint8_t, 16> bytes{};
  if (auto fault = m_memory.read(stack.value, std::span(bytes.data(), std::size_t{2} * slot),
                                 data_privilege())) {
    return reflect(page_fault(*fault));
  }
  const std::uint64_t new_rip = load_little_endian(std::span(bytes.data(), slot));
  const auto code_selector =
      static_cast<std::uint16_t>(load_little_endian(std::span(bytes.data() + slot, slot)));
  auto code = check_return_code_segment(code_selector);
  if (code.fault) return reflect(*code.fault);
  if (!code.value.is_64bit_code()) return unsupported("far return to compatibility mode");
  const auto new_privilege = static_cast<std::uint8_t>(code_selector & kSelectorPrivilegeMask);

  std::uint64_t new_rsp = m_registers.rsp + std::uint64_t{2} * slot + release;
  std::uint16_t stack_selector = m_cpu.ss;
  if (new_privilege > m_cpu.cpl) {
    auto outer = canonical_address(new_rsp, ZYDIS_REGISTER_SS);
    if (outer.fault) return reflect(*outer.fault);
    if (auto fault = m_memory.read(outer.value, std::span(bytes.data(), std::size_t{2} * slot),
                                   data_privilege())) {
      return reflect(page_fault(*fault));
    }
    new_rsp = load_little_endian(std::span(bytes.data(), slot)) + release;
    stack_selector =
        static_cast<std::uint16_t>(load_little_endian(std::span(bytes.data() + slot, slot)));
    if (auto fault = check_return_stack_segment(stack_selector, code_selector, true)) {
      return reflect(*fault);
    }
  }
  if (!is_canonical(new_rip, m_cpu)) return general_protection();
  m_registers.rip = new_rip;
  m_registers.rsp = new_rsp;
  m_cpu.cs = code_selector;
  m_cpu.ss = stack_selector;
  m_cpu.cpl = new_privilege;
  return transferred();
}

// --- syscall, sysret -----------------------------------------------------------------

// A syscall reaches the emulator when the real EFER.SCE is clear (#UD): with
// the virtual SCE clear the guest gets the #UD; otherwise it is carried out.
Emulation InstructionEmulator::system_call() {
  if ((m_cpu.efer & kEferSyscallEnable) == 0) return reflect(invalid_opcode_event());
  m_registers.rip += instruction().length;
  deliver_syscall(m_registers, m_cpu);
  return outcome(EmulationKind::Emulated);
}

// sysretq (Intel SDM vol. 2B SYSRET): CPL0; RIP = RCX (canonical),
// RFLAGS = (R11 & 3C7FD7H) | 2, CS = STAR[63:48] + 16, SS = STAR[63:48] + 8,
// both with RPL 3.
Emulation InstructionEmulator::system_return() {
  if ((m_cpu.efer & kEferSyscallEnable) == 0) return reflect(invalid_opcode_event());
  if (!kernel_mode()) return general_protection();
  if (instruction().operand_width != 64) return unsupported("sysret to compatibility mode");
  if (!is_canonical(m_registers.rcx, m_cpu)) return general_protection();
  m_registers.rip = m_registers.rcx;
  set_guest_visible_rflags(m_registers, m_cpu, (m_registers.r11 & 0x3c7fd7) | kRflagsFixed);
  const auto base = static_cast<std::uint16_t>(m_cpu.star >> 48);
  m_cpu.cs = static_cast<std::uint16_t>((base + 16) | 3);
  m_cpu.ss = static_cast<std::uint16_t>((base + 8) | 3);
  m_cpu.cpl = 3;
  return outcome(EmulationKind::Emulated);
}

// --- Dispatch --------------------------------------------------------------------------

Emulation InstructionEmulator::privileged(MonitorServices& services, const Event& trap) {
  m_services = &services;
  const std::optional<Operation> operation = classify(m_decoded);
  if (!operation) {
    // At virtual CPL3 the real CPU ran at the same privilege: its trap is
    // the answer. In virtual kernel mode, an instruction that is not
    // sensitive faulted on its own account (a bad address, ud2...).
    if (!kernel_mode() || !is_sensitive(m_decoded)) return reflect(trap);
    return unsupported("privileged instruction the monitor does not emulate");
  }
  switch (*operation) {
    case Operation::ClearInterrupts:
      return interrupt_flag_instruction(false);
    case Operation::SetInterrupts:
      return interrupt_flag_instruction(true);
    case Operation::Halt:
      return halt();
    case Operation::PortInput:
      return port_input();
    case Operation::PortOutput:
      return port_output();
    case Operation::StringInput:
    case Operation::StringOutput:
      return string_input_output(*operation);
    case Operation::Move:
      return move(trap);
    case Operation::LoadGlobalDescriptorTable:
      return load_descriptor_table(m_cpu.gdtr);
    case Operation::LoadInterruptDescriptorTable:
      return load_descriptor_table(m_cpu.idtr);
    case Operation::StoreGlobalDescriptorTable:
      return store_descriptor_table(m_cpu.gdtr);
    case Operation::StoreInterruptDescriptorTable:
      return store_descriptor_table(m_cpu.idtr);
    case Operation::StoreLocalDescriptorTable:
      return store_selector(m_cpu.ldtr);
    case Operation::StoreTaskRegister:
      return store_selector(m_cpu.tr);
    case Operation::StoreMachineStatusWord:
      return store_machine_status_word();
    case Operation::LoadMachineStatusWord:
      return load_machine_status_word(services);
    case Operation::LoadTaskRegister:
      return load_task_register();
    case Operation::LoadLocalDescriptorTable:
      return load_local_descriptor_table();
    case Operation::ReadModelSpecificRegister:
      return read_model_specific_register();
    case Operation::WriteModelSpecificRegister:
      return write_model_specific_register(services);
    case Operation::SwapGs:
      // Intel SDM vol. 2B SWAPGS: CPL0 only.
      if (!kernel_mode()) return general_protection();
      std::swap(m_cpu.gs_base, m_cpu.kernel_gs_base);
      return completed();
    case Operation::InvalidatePage:
      return invalidate_page(services);
    case Operation::InterruptReturn:
      return interrupt_return();
    case Operation::FarReturn:
      return far_return();
    case Operation::ClearTaskSwitched:
      // Intel SDM vol. 2A CLTS: CPL0 only.
      if (!kernel_mode()) return general_protection();
      m_cpu.cr0 &= ~kCr0TaskSwitched;
      return completed();
    case Operation::InvalidateCaches:
      // wbinvd/invd: CPL0 only; the virtual CPU has no caches of its own.
      if (!kernel_mode()) return general_protection();
      return completed();
    case Operation::Breakpoint:
    case Operation::SoftwareInterrupt: {
      // int3 / int n trapped because the real gate's DPL is 0: deliver_event
      // checks the virtual gate's DPL against the virtual CPL (Intel SDM
      // vol. 3A, 6.12.1.1) and pushes the address after the instruction.
      const auto vector = static_cast<std::uint8_t>(
          *operation == Operation::Breakpoint ? kVectorBreakpoint : operand(0).imm.value.u);
      return reflect(Event{vector, std::nullopt, EventSource::Software, 0, instruction().length});
    }
    case Operation::SystemCall:
      return system_call();
    case Operation::SystemReturn:
      return system_return();
    case Operation::ReadTimeStampCounter:
      // Intel SDM vol. 2B RDTSC: #GP(0) at CPL > 0 when CR4.TSD is set.
      if (!kernel_mode() && (m_cpu.cr4 & kCr4TimeStampDisable) != 0) return general_protection();
      return unsupported(
          "the monitor keeps no time-stamp counter: run with the real CR4.TSD clear");
    case Operation::ReadPerformanceCounter:
      if (!kernel_mode() && (m_cpu.cr4 & kCr4PerformanceCounterEnable) == 0) {
        return general_protection();
      }
      return unsupported("performance counters are not virtualized");
  }
  return unsupported("unknown operation");
}

// --- Stores to page-table pages ----------------------------------------------------

Emulation InstructionEmulator::memory_write() {
  const ZydisDecodedInstruction& decoded = instruction();
  for (const StoreEntry& entry : kStores) {
    if (entry.mnemonic != decoded.mnemonic) continue;
    // MOVSD is also the SSE scalar move (F2 0F 10/11); only the one-byte
    // opcode A5 is the string instruction.
    if (entry.string_size != 0 && decoded.opcode_map != ZYDIS_OPCODE_MAP_DEFAULT) break;
    if (entry.string_size != 0) return store_string(entry.operation, entry.string_size);
    return store_to_memory(entry.operation);
  }
  return unsupported("not a store the monitor emulates");
}

// mov/xchg/add/sub/and/or/xor/cmpxchg with a memory destination (Intel SDM
// vol. 2 for each). A locked form is atomic by construction here: one vCPU,
// stopped while the monitor runs.
Emulation InstructionEmulator::store_to_memory(StoreOperation operation) {
  const ZydisDecodedOperand* memory_operand = nullptr;
  const ZydisDecodedOperand* other = nullptr;
  for (std::size_t index = 0; index < 2; ++index) {
    const ZydisDecodedOperand& candidate = operand(index);
    if (candidate.type == ZYDIS_OPERAND_TYPE_MEMORY && memory_operand == nullptr) {
      memory_operand = &candidate;
    } else {
      other = &candidate;
    }
  }
  if (memory_operand == nullptr || other == nullptr ||
      memory_operand->mem.type != ZYDIS_MEMOP_TYPE_MEM) {
    return unsupported("not a store to memory");
  }
  if (operation != StoreOperation::Exchange && memory_operand != &operand(0)) {
    return unsupported("not a store to memory");
  }
  if (other->type == ZYDIS_OPERAND_TYPE_REGISTER && register_field(other->reg.value) == nullptr) {
    return unsupported("source is not a general-purpose register");
  }
  const unsigned bits = memory_operand->size;
  const unsigned size = bits / 8;
  if (size == 0 || size > 8) return unsupported("store size not emulated");

  auto address = effective_address(*memory_operand);
  if (address.fault) return reflect(*address.fault);
  auto source = read_operand(*other, bits);
  if (source.fault) return reflect(*source.fault);

  // Nothing changes in the guest unless the store succeeds.
  std::uint64_t stored = source.value;
  std::uint64_t rflags = m_registers.rflags;
  std::optional<std::pair<ZydisRegister, std::uint64_t>> register_result;
  if (operation != StoreOperation::Move) {
    auto old = read_value(address.value, size);
    if (old.fault) return reflect(*old.fault);
    const std::uint64_t current = old.value;
    switch (operation) {
      case StoreOperation::Move:
        break;
      case StoreOperation::Exchange:
        register_result = {other->reg.value, current};
        break;
      case StoreOperation::Add:
        stored = current + source.value;
        rflags = arithmetic_flags(rflags, FlagsOperation::Add, current, source.value, stored, bits);
        break;
      case StoreOperation::Subtract:
        stored = current - source.value;
        rflags =
            arithmetic_flags(rflags, FlagsOperation::Subtract, current, source.value, stored, bits);
        break;
      case StoreOperation::And:
        stored = current & source.value;
        rflags =
            arithmetic_flags(rflags, FlagsOperation::Logic, current, source.value, stored, bits);
        break;
      case StoreOperation::Or:
        stored = current | source.value;
        rflags =
            arithmetic_flags(rflags, FlagsOperation::Logic, current, source.value, stored, bits);
        break;
      case StoreOperation::Xor:
        stored = current ^ source.value;
        rflags =
            arithmetic_flags(rflags, FlagsOperation::Logic, current, source.value, stored, bits);
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
        const std::uint64_t expected = read_register(m_registers, accumulator);
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
        return unsupported("string store reached the wrong path");
    }
  }
  if (auto fault = write_value(address.value, size, stored)) return reflect(*fault);
  m_registers.rflags = rflags;
  if (register_result) write_register(m_registers, register_result->first, register_result->second);
  Emulation emulation = completed();
  emulation.written = {address.value, size};
  return emulation;
}

// stos/movs with or without rep (Intel SDM vol. 2B STOS, MOVS, REP), as
// string I/O above: a fault leaves the registers at the element that faulted.
Emulation InstructionEmulator::store_string(StoreOperation operation, unsigned size) {
  const bool repeat = has_repeat_prefix();
  const std::uint64_t mask = address_mask();
  const bool down = (m_registers.rflags & kRflagsDirection) != 0;
  const ZydisRegister source_segment =
      operation == StoreOperation::MoveString ? operand(1).mem.segment : ZYDIS_REGISTER_DS;
  std::uint64_t lowest = ~std::uint64_t{0};
  std::uint64_t highest = 0;
  auto result_with_range = [&](Emulation emulation) {
    if (highest > lowest) emulation.written = {lowest, highest - lowest};
    return emulation;
  };

  for (std::uint64_t iteration = 0;; ++iteration) {
    if (repeat && (m_registers.rcx & mask) == 0) break;
    if (iteration == kMaximumStringIterations) return result_with_range(transferred());
    auto destination = canonical_address(m_registers.rdi & mask, ZYDIS_REGISTER_ES);
    if (destination.fault) return result_with_range(reflect(*destination.fault));
    std::uint64_t value = m_registers.rax;
    if (operation == StoreOperation::MoveString) {
      auto source = canonical_address((m_registers.rsi & mask) + segment_base(source_segment),
                                      source_segment);
      if (source.fault) return result_with_range(reflect(*source.fault));
      auto loaded = read_value(source.value, size);
      if (loaded.fault) return result_with_range(reflect(*loaded.fault));
      value = loaded.value;
    }
    if (auto fault = write_value(destination.value, size, value)) {
      return result_with_range(reflect(*fault));
    }
    lowest = std::min(lowest, destination.value);
    highest = std::max(highest, destination.value + size);
    m_registers.rdi = (down ? m_registers.rdi - size : m_registers.rdi + size) & mask;
    if (operation == StoreOperation::MoveString) {
      m_registers.rsi = (down ? m_registers.rsi - size : m_registers.rsi + size) & mask;
    }
    if (!repeat) break;
    m_registers.rcx = (m_registers.rcx - 1) & mask;
  }
  return result_with_range(completed());
}

}  // namespace

Emulation emulate_privileged(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                             MonitorServices& services, const Event& trap) {
  auto decoded = fetch_and_decode(registers, cpu, memory);
  if (decoded.fault) {
    return reflect_without_instruction(*decoded.fault, "the instruction at RIP does not decode");
  }
  InstructionEmulator emulator(registers, cpu, memory, decoded.value);
  return emulator.privileged(services, trap);
}

Emulation emulate_memory_write(GuestRegisters& registers, VirtualCpu& cpu,
                               GuestVirtualMemory& memory) {
  auto decoded = fetch_and_decode(registers, cpu, memory);
  if (decoded.fault) {
    return reflect_without_instruction(*decoded.fault, "the instruction at RIP does not decode");
  }
  InstructionEmulator emulator(registers, cpu, memory, decoded.value);
  return emulator.memory_write();
}

Emulation emulate_iretq(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory) {
  auto decoded = fetch_and_decode(registers, cpu, memory);
  if (decoded.fault) {
    return reflect_without_instruction(*decoded.fault, "the instruction at RIP does not decode");
  }
  InstructionEmulator emulator(registers, cpu, memory, decoded.value);
  if (classify(decoded.value) != Operation::InterruptReturn) {
    Emulation emulation;
    emulation.mnemonic = decoded.value.text;
    emulation.instruction_length = decoded.value.instruction.length;
    emulation.detail = "not an iret";
    return emulation;
  }
  return emulator.interrupt_return();
}

}  // namespace vmlab::full
