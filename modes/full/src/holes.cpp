// The x86 holes (Robin & Irvine, USENIX Security 2000): instructions that are
// sensitive, because they read or change state the guest kernel believes it
// owns, yet do not trap at CPL3. Under `full` the deprivileged kernel runs
// them and sees the monitor's state instead of its own (guest/kernel/probes.c
// shows which); a binary translator replaces each with a call-out, and the
// monitor carries it out here against the virtual CPU, as a CPU running the
// guest at the virtual CPL would: pushf and popf (Intel SDM vol. 2B
// PUSHF/PUSHFD/PUSHFQ, POPF/POPFD/POPFQ), push fs and push gs (vol. 2B
// PUSH), lar, lsl, verr and verw (vol. 2A LAR, LSL; vol. 2B VERR/VERW). The
// other holes, mov from a segment register and sgdt, sidt, sldt, str and
// smsw, are in system_state.cpp next to the instructions they mirror.
#include <Zydis/Zydis.h>

#include <array>
#include <optional>
#include <span>

#include "instruction.hpp"
#include "vmlab/little_endian.hpp"

namespace vmlab::full::detail {

using namespace monitor;  // NOLINT(google-build-using-namespace)

namespace {

// --- pushf, popf ---------------------------------------------------------------------

// pushf stores RFLAGS AND 00FCFFFFH: VM and RF read as 0 in the image (vol.
// 2B PUSHF, "Operation"); with a 16-bit operand size (0x66) its low 16 bits.
constexpr std::uint64_t kPushedFlags = 0x00fcffff;

// The operand size of pushf and popf: 64 bits, or 16 with 0x66. A 32-bit
// one cannot be encoded in 64-bit mode (pushfd, popfd are N.E.).
unsigned flags_operand_size(const Instruction& instruction) {
  return instruction.info().operand_width / 8;
}

// The guest's RFLAGS: the real status flags, TF, DF, NT, AC and ID, with the
// virtual IF and IOPL (guest_visible_rflags). Never traps in protected mode;
// only virtual-8086 mode, which 64-bit mode lacks, checks IOPL.
Emulation push_flags(Instruction& instruction, const Event&) {
  const unsigned size = flags_operand_size(instruction);
  const std::uint64_t image = guest_visible_rflags(instruction.registers(), instruction.cpu()) &
                              kPushedFlags & width_mask(8 * size);
  if (auto fault = instruction.push(image, size)) return instruction.reflect(*fault);
  return instruction.completed();
}

// What popf loads at every CPL (vol. 2B POPF, "Operation", protected mode):
// the status flags, TF, DF and NT from the low 16 bits, and AC and ID with a
// 64-bit operand size.
constexpr std::uint64_t kPoppedWordFlags = kRflagsCarry | kRflagsParity | kRflagsAuxiliaryCarry |
                                           kRflagsZero | kRflagsSign | kRflagsTrap |
                                           kRflagsDirection | kRflagsOverflow | kRflagsNestedTask;
constexpr std::uint64_t kPoppedWideFlags = kRflagsAlignmentCheck | kRflagsIdentification;

// popf never faults for privilege: at CPL0 it loads IF and IOPL, above CPL0
// IOPL stays, and IF too unless CPL <= IOPL (the rule that makes a
// deprivileged kernel's popf silently keep IF: the hole). VM, VIF, VIP and
// the reserved bits are unaffected, bit 1 stays set; RF clears as the
// instruction completes. Setting IF opens no interrupt shadow: only sti and
// mov ss have one (vol. 2B STI; vol. 3A 6.8.3).
//
// TF, AC and ID are the guest's real flags (GuestRegisters::rflags) and are
// loaded there as a CPL0 popf loads them. A monitor that resumes the guest
// with them (FullMode does) gets TF's timing right for free: the first
// single-step trap follows the instruction after the popf (vol. 3A,
// 18.3.1.4).
Emulation pop_flags(Instruction& instruction, const Event&) {
  GuestRegisters& registers = instruction.registers();
  VirtualCpu& cpu = instruction.cpu();
  const unsigned size = flags_operand_size(instruction);
  std::uint64_t loaded = kPoppedWordFlags;
  if (size == 8) loaded |= kPoppedWideFlags;
  if (cpu.cpl <= cpu.iopl) loaded |= kRflagsInterrupt;
  if (cpu.cpl == 0) loaded |= kRflagsIoplMask;

  auto popped = instruction.pop(size);
  if (popped.fault) return instruction.reflect(*popped.fault);
  const std::uint64_t current = guest_visible_rflags(registers, cpu);
  set_guest_visible_rflags(registers, cpu, (current & ~loaded) | (popped.value & loaded));
  return instruction.completed();
}

// --- push fs, push gs ---------------------------------------------------------------

bool pushes_segment_register(const Decoded& decoded) {
  return is_register_of_class(decoded.operands[0], ZYDIS_REGCLASS_SEGMENT);
}

// The selector the guest loaded, zero-extended to the 64-bit operand size
// (2 bytes with 0x66; vol. 2B PUSH, "Operand size"). push cs, ss, ds and es
// are invalid in 64-bit mode: they do not decode, and are #UD.
Emulation push_segment_register(Instruction& instruction, const Event&) {
  const unsigned size = instruction.info().operand_width / 8;
  const std::uint16_t selector =
      segment_selector(instruction.cpu(), instruction.operand(0).reg.value);
  if (auto fault = instruction.push(selector, size)) return instruction.reflect(*fault);
  return instruction.completed();
}

// --- lar, lsl, verr, verw ----------------------------------------------------------

// The descriptor that lar, lsl, verr and verw check, as its two doublewords,
// or nothing (they clear ZF and fault on nothing) for a null selector, for
// one whose 8 bytes pass the GDT limit, and for one in the LDT: the virtual
// CPU's LDTR is always null (lldt of anything else is unsupported), and
// through a null LDTR no selector is within the limit. Reading the GDT is a
// supervisor access, and its page fault is the guest's.
OrFault<std::optional<std::uint64_t>> checked_descriptor(Instruction& instruction,
                                                         std::uint16_t selector) {
  const VirtualCpu& cpu = instruction.cpu();
  const std::uint64_t offset = selector & 0xfff8u;
  if (is_null_selector(selector) || (selector & kSelectorTableIndicator) != 0 ||
      offset + 7 > cpu.gdtr.limit) {
    return {std::nullopt, std::nullopt};
  }
  std::array<std::uint8_t, 8> bytes{};
  if (auto fault = instruction.memory().read(GuestVirtAddr(cpu.gdtr.base + offset), bytes,
                                             AccessPrivilege::Supervisor)) {
    return {std::nullopt, page_fault(*fault)};
  }
  return {load_little_endian(std::span<const std::uint8_t>(bytes)), std::nullopt};
}

// The privilege rule the four share: a conforming code segment is visible
// from every CPL; any other descriptor only if its DPL is numerically at
// least both the CPL and the selector's RPL.
bool visible(const SegmentDescriptor& descriptor, std::uint16_t selector, std::uint8_t cpl) {
  if (descriptor.is_conforming_code()) return true;
  const auto requested = static_cast<std::uint8_t>(selector & kSelectorPrivilegeMask);
  return descriptor.privilege_level >= cpl && descriptor.privilege_level >= requested;
}

// Every code and data descriptor is valid for lar and lsl; of the system
// types, the IA-32e mode column of the table in vol. 2A LAR ("Segment and
// Gate Types") and LSL ("Segment and Gate Descriptor Types"). The two
// differ: lar takes the 64-bit call gate, lsl does not; lsl takes the LDT
// and type 0 (the upper 8 bytes of a 16-byte descriptor), lar does not.
// (AMD's APM accepts the LDT for lar as well; Intel's tables decide here.)
bool valid_for_load_access_rights(const SegmentDescriptor& descriptor) {
  if (!descriptor.system) return true;
  switch (descriptor.type) {
    case 0x9:  // available 64-bit TSS
    case 0xb:  // busy 64-bit TSS
    case 0xc:  // 64-bit call gate
      return true;
    default:
      return false;
  }
}

bool valid_for_load_segment_limit(const SegmentDescriptor& descriptor) {
  if (!descriptor.system) return true;
  switch (descriptor.type) {
    case 0x0:  // the upper half of a 16-byte descriptor
    case kDescriptorTypeLdt:
    case 0x9:
    case 0xb:
      return true;
    default:
      return false;
  }
}

void set_zero_flag(GuestRegisters& registers, bool set) {
  if (set) {
    registers.rflags |= kRflagsZero;
  } else {
    registers.rflags &= ~kRflagsZero;
  }
}

// What lar and lsl put in their destination register, from the descriptor.
using ResultOf = std::uint64_t (*)(std::uint64_t descriptor, unsigned destination_bits);

// lar and lsl: ZF and the destination if the descriptor passes, ZF alone
// (the destination unchanged) if not; no other flag changes. The source is
// the low 16 bits of a register or a 16-bit memory operand.
Emulation load_descriptor_field(Instruction& instruction,
                                bool (*valid_type)(const SegmentDescriptor&), ResultOf result) {
  auto selector = instruction.read_selector_operand(instruction.operand(1));
  if (selector.fault) return instruction.reflect(*selector.fault);
  auto descriptor = checked_descriptor(instruction, selector.value);
  if (descriptor.fault) return instruction.reflect(*descriptor.fault);
  bool passes = false;
  if (descriptor.value) {
    const SegmentDescriptor decoded = decode_segment_descriptor(*descriptor.value);
    passes = valid_type(decoded) && visible(decoded, selector.value, instruction.cpu().cpl);
  }
  if (passes) {
    const ZydisDecodedOperand& destination = instruction.operand(0);
    write_register(instruction.registers(), destination.reg.value,
                   result(*descriptor.value, destination.size));
  }
  set_zero_flag(instruction.registers(), passes);
  return instruction.completed();
}

// lar: the descriptor's second doubleword (type, S, DPL, P and, beyond 16
// bits, AVL, L, D/B, G), masked by FF00H for a 16-bit destination and by
// 00FxFF00H otherwise, zero-extended. Intel leaves bits 19:16 (the limit's
// top) undefined; AMD's APM keeps them. This emulator clears them, as the
// native reference `vmlab probe` compares with (QEMU) does, so that a
// translated kernel sees what it sees on that machine.
std::uint64_t access_rights(std::uint64_t descriptor, unsigned destination_bits) {
  const auto rights = static_cast<std::uint32_t>(descriptor >> 32);
  return destination_bits == 16 ? rights & 0xff00u : rights & 0x00f0ff00u;
}

// lsl: the limit in bytes (scaled by 4 KiB and filled with 1s when G is
// set), truncated to a 16-bit destination, zero-extended to a 64-bit one.
std::uint64_t segment_limit(std::uint64_t descriptor, unsigned destination_bits) {
  return decode_segment_descriptor(descriptor).limit & width_mask(destination_bits);
}

Emulation load_access_rights(Instruction& instruction, const Event&) {
  return load_descriptor_field(instruction, valid_for_load_access_rights, access_rights);
}

Emulation load_segment_limit(Instruction& instruction, const Event&) {
  return load_descriptor_field(instruction, valid_for_load_segment_limit, segment_limit);
}

enum class Verify { Read, Write };

// verr, verw r/m16: ZF = 1 if the segment is a code or data segment (never
// a system one) visible at the CPL and readable (verr: data, or code with
// R set) or writable (verw: data with W set; code never is). The present bit
// is not checked; no flag but ZF changes.
Emulation verify_segment(Instruction& instruction, Verify access) {
  auto selector = instruction.read_selector_operand(instruction.operand(0));
  if (selector.fault) return instruction.reflect(*selector.fault);
  auto descriptor = checked_descriptor(instruction, selector.value);
  if (descriptor.fault) return instruction.reflect(*descriptor.fault);
  bool passes = false;
  if (descriptor.value) {
    const SegmentDescriptor decoded = decode_segment_descriptor(*descriptor.value);
    // Both are false for a system descriptor.
    const bool allowed =
        access == Verify::Read ? decoded.is_readable() : decoded.is_writable_data();
    passes = allowed && visible(decoded, selector.value, instruction.cpu().cpl);
  }
  set_zero_flag(instruction.registers(), passes);
  return instruction.completed();
}

Emulation verify_read(Instruction& instruction, const Event&) {
  return verify_segment(instruction, Verify::Read);
}

Emulation verify_write(Instruction& instruction, const Event&) {
  return verify_segment(instruction, Verify::Write);
}

constexpr std::array kHoleOperations{
    Operation{ZYDIS_MNEMONIC_PUSHF, push_flags},
    Operation{ZYDIS_MNEMONIC_PUSHFQ, push_flags},
    Operation{ZYDIS_MNEMONIC_POPF, pop_flags},
    Operation{ZYDIS_MNEMONIC_POPFQ, pop_flags},
    Operation{ZYDIS_MNEMONIC_PUSH, push_segment_register, pushes_segment_register},
    Operation{ZYDIS_MNEMONIC_LAR, load_access_rights},
    Operation{ZYDIS_MNEMONIC_LSL, load_segment_limit},
    Operation{ZYDIS_MNEMONIC_VERR, verify_read},
    Operation{ZYDIS_MNEMONIC_VERW, verify_write},
};

}  // namespace

std::span<const Operation> hole_operations() {
  return kHoleOperations;
}

}  // namespace vmlab::full::detail
