#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/cpu_mode.hpp"
#include "vmlab/format.hpp"
#include "vmlab/little_endian.hpp"

#include <array>
#include <cstdio>
#include <span>
#include <string>

namespace vmlab::monitor {

namespace {

constexpr std::uint16_t kSelectorIndexMask = 0xfff8;
constexpr std::uint16_t kSelectorTableIndicator = 0x4;  // 1: LDT
constexpr std::uint16_t kSelectorPrivilegeMask = 0x3;
constexpr std::uint32_t kErrorCodeExternal = 1u << 0;  // EXT (Intel SDM vol. 3A, 6.13)
constexpr std::uint32_t kErrorCodeIdt = 1u << 1;       // IDT: the index names an IDT gate

// 64-bit TSS (Intel SDM vol. 3A, 8.7, Figure 8-11).
constexpr std::uint64_t kTssRsp0Offset = 0x04;
constexpr std::uint64_t kTssIst1Offset = 0x24;

// IDT gate types in 64-bit mode (Intel SDM vol. 3A, 3.5, Table 3-2).
constexpr std::uint8_t kGateTypeInterrupt = 0xe;
constexpr std::uint8_t kGateTypeTrap = 0xf;

Event general_protection(std::uint32_t error_code) {
  return Event{kVectorGeneralProtection, error_code, EventSource::Exception};
}

Event exception_with_code(std::uint8_t vector, std::uint32_t error_code) {
  return Event{vector, error_code, EventSource::Exception};
}

Event page_fault(const GuestVirtualMemory::Fault& fault) {
  return Event{kVectorPageFault, fault.error_code, EventSource::Exception, fault.address};
}

std::uint64_t load_quadword(std::span<const std::uint8_t> bytes, std::size_t offset) {
  return load_little_endian(bytes.subspan(offset, 8));
}

AccessPrivilege privilege_of(std::uint8_t privilege_level) {
  return privilege_level == 3 ? AccessPrivilege::User : AccessPrivilege::Supervisor;
}

// Double-fault classes (Intel SDM vol. 3A, 6.15, Table 6-4).
enum class FaultClass { Benign, Contributory, PageFault, DoubleFault };

FaultClass classify(const Event& event) {
  if (event.source != EventSource::Exception) return FaultClass::Benign;
  switch (event.vector) {
    case kVectorDivideError:
    case kVectorInvalidTss:
    case kVectorSegmentNotPresent:
    case kVectorStackFault:
    case kVectorGeneralProtection:
      return FaultClass::Contributory;
    case kVectorPageFault:
      return FaultClass::PageFault;
    case kVectorDoubleFault:
      return FaultClass::DoubleFault;
    default:
      return FaultClass::Benign;
  }
}

// Table 6-5: which second exception, raised while delivering the first,
// becomes a double fault instead of being delivered in turn.
bool becomes_double_fault(FaultClass first, FaultClass second) {
  const bool second_serious = second == FaultClass::Contributory || second == FaultClass::PageFault;
  switch (first) {
    case FaultClass::Benign:
      return false;
    case FaultClass::Contributory:
      return second == FaultClass::Contributory;
    case FaultClass::PageFault:
    case FaultClass::DoubleFault:  // the caller treats this one as a triple fault
      return second_serious;
  }
  return false;
}

std::string describe(const Event& event) {
  std::string text = "vector " + std::to_string(event.vector);
  if (event.error_code) text += " error code " + hex(*event.error_code);
  if (event.vector == kVectorPageFault && event.source == EventSource::Exception) {
    text += " address " + hex(event.fault_address.value());
  }
  return text;
}

// Reads a quadword of the virtual TSS (RSPn or ISTn), as the CPU does on a
// stack switch: past the TSS limit is #TS(TSS selector) (Intel SDM vol. 3A,
// 6.14.4 and 6.14.5).
OrFault<std::uint64_t> read_tss_quadword(const VirtualCpu& cpu, GuestVirtualMemory& memory,
                                         std::uint64_t offset) {
  if (offset + 7 > cpu.tss_limit) {
    return {0, exception_with_code(kVectorInvalidTss, cpu.tr & kSelectorIndexMask)};
  }
  std::array<std::uint8_t, 8> bytes{};
  if (auto fault =
          memory.read(GuestVirtAddr(cpu.tss_base + offset), bytes, AccessPrivilege::Supervisor)) {
    return {0, page_fault(*fault)};
  }
  return {load_quadword(bytes, 0), std::nullopt};
}

// One attempt at delivering `event` (Intel SDM vol. 2A INT n pseudo-code,
// "IA-32e mode" paths, and vol. 3A 6.14). Returns the exception raised while
// delivering, with the guest state unchanged, or nothing once the guest is at
// its handler.
std::optional<Event> deliver_once(GuestRegisters& registers, VirtualCpu& cpu,
                                  GuestVirtualMemory& memory, const Event& event) {
  const std::uint32_t external = event.source == EventSource::Software ? 0 : kErrorCodeExternal;
  const std::uint32_t gate_error = (std::uint32_t{event.vector} << 3) | kErrorCodeIdt | external;

  // 6.14.1: 16-byte gates; the whole gate must lie inside the IDT limit.
  const std::uint64_t gate_offset = std::uint64_t{event.vector} * 16;
  if (gate_offset + 15 > cpu.idtr.limit) return general_protection(gate_error);
  std::array<std::uint8_t, 16> gate{};
  if (auto fault = memory.read(GuestVirtAddr(cpu.idtr.base + gate_offset), gate,
                               AccessPrivilege::Supervisor)) {
    return page_fault(*fault);
  }
  const std::uint64_t low = load_quadword(gate, 0);
  const std::uint64_t high = load_quadword(gate, 8);
  const auto gate_type = static_cast<std::uint8_t>((low >> 40) & 0x1f);  // S bit included: 0
  const auto gate_privilege = static_cast<std::uint8_t>((low >> 45) & 3);
  const bool gate_present = ((low >> 47) & 1) != 0;
  const auto selector = static_cast<std::uint16_t>((low >> 16) & 0xffff);
  const auto stack_table_index = static_cast<unsigned>((low >> 32) & 7);
  const std::uint64_t handler =
      (low & 0xffff) | (((low >> 48) & 0xffff) << 16) | ((high & 0xffffffff) << 32);

  if (gate_type != kGateTypeInterrupt && gate_type != kGateTypeTrap) {
    return general_protection(gate_error);
  }
  // 6.12.1.1: int n, int3 may only use gates at or below their privilege.
  if (event.source == EventSource::Software && gate_privilege < cpu.cpl) {
    return general_protection(gate_error);
  }
  if (!gate_present) return exception_with_code(kVectorSegmentNotPresent, gate_error);

  // The handler's code segment.
  if ((selector & kSelectorIndexMask) == 0 && (selector & kSelectorTableIndicator) == 0) {
    return general_protection(external);
  }
  auto code = read_gdt_descriptor(cpu, memory, selector, DescriptorSize::Segment8);
  if (code.fault) {
    if (code.fault->vector != kVectorPageFault) *code.fault->error_code |= external;
    return code.fault;
  }
  const std::uint32_t selector_error = (selector & 0xfffcu) | external;
  if (!code.value.is_code() || code.value.privilege_level > cpu.cpl) {
    return general_protection(selector_error);
  }
  if (!code.value.present) return exception_with_code(kVectorSegmentNotPresent, selector_error);
  if (!code.value.is_64bit_code()) return general_protection(selector_error);
  if (!is_canonical(GuestVirtAddr(handler), cpu)) return general_protection(external);

  const std::uint8_t new_privilege =
      code.value.is_conforming_code() ? cpu.cpl : code.value.privilege_level;
  const bool privilege_change = new_privilege < cpu.cpl;

  // 6.14.4, 6.14.5: the stack. IST wins over RSPn; otherwise the same stack.
  std::uint64_t stack = registers.rsp;
  if (stack_table_index != 0 || privilege_change) {
    const std::uint64_t offset = stack_table_index != 0
                                     ? kTssIst1Offset + std::uint64_t{8} * (stack_table_index - 1)
                                     : kTssRsp0Offset + 8 * std::uint64_t{new_privilege};
    auto read = read_tss_quadword(cpu, memory, offset);
    if (read.fault) {
      if (read.fault->vector != kVectorPageFault) *read.fault->error_code |= external;
      return read.fault;
    }
    stack = read.value;
  }
  // 6.14.2: in 64-bit mode the CPU aligns the new RSP to 16 bytes.
  stack &= ~std::uint64_t{0xf};

  const std::uint64_t pushed_rip =
      registers.rip + (event.source == EventSource::Software ? event.instruction_length : 0);
  std::array<std::uint64_t, 6> frame{};  // from the lowest address up
  std::size_t count = 0;
  if (event.error_code) frame[count++] = *event.error_code;
  frame[count++] = pushed_rip;
  frame[count++] = cpu.cs;
  frame[count++] = guest_visible_rflags(registers, cpu);
  frame[count++] = registers.rsp;
  frame[count++] = cpu.ss;
  const GuestVirtAddr frame_address(stack - 8 * count);
  if (!is_canonical(frame_address, cpu) || !is_canonical(GuestVirtAddr(stack - 1), cpu)) {
    return exception_with_code(kVectorStackFault, external);
  }
  // Pushed one quadword at a time from SS down, as the CPU does: the first
  // push that faults names CR2 (the words above it stay written, in stack
  // space the guest does not own yet).
  for (std::size_t index = count; index-- > 0;) {
    std::array<std::uint8_t, 8> bytes{};
    store_little_endian(bytes, frame[index]);
    if (auto fault = memory.write(frame_address + 8 * index, bytes, privilege_of(new_privilege))) {
      return page_fault(*fault);
    }
  }

  // Committed. 6.12.1.3: TF, NT, RF and VM cleared; an interrupt gate clears IF.
  registers.rsp = frame_address.value();
  registers.rip = handler;
  registers.rflags &= ~(kRflagsTrap | kRflagsNestedTask | kRflagsResume | kRflagsVirtual8086);
  registers.rflags |= kRflagsFixed;
  if (gate_type == kGateTypeInterrupt) {
    cpu.interrupt_flag = false;
    registers.rflags &= ~kRflagsInterrupt;
  }
  cpu.cs = static_cast<std::uint16_t>((selector & ~kSelectorPrivilegeMask) | new_privilege);
  // 6.14.4: on a privilege change in 64-bit mode SS becomes a null selector
  // whose RPL is the new CPL.
  if (privilege_change) cpu.ss = new_privilege;
  cpu.cpl = new_privilege;
  cpu.halted = false;
  return std::nullopt;
}

}  // namespace

std::uint64_t guest_visible_rflags(const GuestRegisters& registers, const VirtualCpu& cpu) {
  std::uint64_t rflags = registers.rflags & ~(kRflagsInterrupt | kRflagsIoplMask);
  if (cpu.interrupt_flag) rflags |= kRflagsInterrupt;
  rflags |= (std::uint64_t{cpu.iopl} & 3) << kRflagsIoplShift;
  return rflags | kRflagsFixed;
}

void set_guest_visible_rflags(GuestRegisters& registers, VirtualCpu& cpu, std::uint64_t rflags) {
  cpu.interrupt_flag = (rflags & kRflagsInterrupt) != 0;
  cpu.iopl = static_cast<std::uint8_t>((rflags & kRflagsIoplMask) >> kRflagsIoplShift);
  registers.rflags = rflags | kRflagsFixed;
}

bool is_canonical(GuestVirtAddr address, const VirtualCpu& cpu) {
  const unsigned bits = (cpu.cr4 & kCr4FiveLevelPaging) != 0 ? 57 : 48;
  const std::uint64_t value = address.value();
  const auto sign_extended =
      static_cast<std::uint64_t>(static_cast<std::int64_t>(value << (64 - bits)) >> (64 - bits));
  return sign_extended == value;
}

SegmentDescriptor decode_segment_descriptor(std::uint64_t low, std::uint64_t high) {
  SegmentDescriptor descriptor;
  descriptor.type = static_cast<std::uint8_t>((low >> 40) & 0xf);
  descriptor.system = ((low >> 44) & 1) == 0;
  descriptor.privilege_level = static_cast<std::uint8_t>((low >> 45) & 3);
  descriptor.present = ((low >> 47) & 1) != 0;
  descriptor.long_mode = ((low >> 53) & 1) != 0;
  descriptor.default_size = ((low >> 54) & 1) != 0;
  const bool granularity = ((low >> 55) & 1) != 0;
  std::uint32_t limit = static_cast<std::uint32_t>((low & 0xffff) | ((low >> 32) & 0xf0000));
  if (granularity) limit = (limit << 12) | 0xfff;
  descriptor.limit = limit;
  descriptor.base = ((low >> 16) & 0xffffff) | (((low >> 56) & 0xff) << 24);
  if (descriptor.system) {
    descriptor.base |= (high & 0xffffffff) << 32;
    descriptor.upper_type = static_cast<std::uint8_t>((high >> 40) & 0x1f);
  }
  return descriptor;
}

OrFault<SegmentDescriptor> read_gdt_descriptor(const VirtualCpu& cpu, GuestVirtualMemory& memory,
                                               std::uint16_t selector, DescriptorSize size) {
  const std::uint32_t selector_error = selector & 0xfffcu;
  const std::uint64_t offset = selector & kSelectorIndexMask;
  const std::uint64_t length = size == DescriptorSize::System16 ? 16 : 8;
  // Intel SDM vol. 3A, 3.4.2 and 3.5.1: the descriptor must lie within the
  // table limit. LDT selectors: the virtual CPU models no LDT contents.
  if ((selector & kSelectorTableIndicator) != 0 || offset + length - 1 > cpu.gdtr.limit) {
    return {{}, general_protection(selector_error)};
  }
  std::array<std::uint8_t, 16> bytes{};
  if (auto fault = memory.read(GuestVirtAddr(cpu.gdtr.base + offset),
                               std::span(bytes.data(), length), AccessPrivilege::Supervisor)) {
    return {{}, page_fault(*fault)};
  }
  return {decode_segment_descriptor(load_quadword(bytes, 0),
                                    length == 16 ? load_quadword(bytes, 8) : 0),
          std::nullopt};
}

Result<void> deliver_event(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                           const Event& event) {
  Event current = event;
  // CR2 is loaded when a page fault is raised (Intel SDM vol. 3A, 6.15,
  // "Interrupt 14"), whether or not it is then delivered as such.
  if (current.vector == kVectorPageFault && current.source == EventSource::Exception) {
    cpu.cr2 = current.fault_address.value();
  }
  // Each round either delivers or escalates (benign -> any -> #DF -> triple
  // fault), so three rounds always end it; the bound is only a guard.
  for (int round = 0; round < 4; ++round) {
    std::optional<Event> fault = deliver_once(registers, cpu, memory, current);
    if (!fault) return {};
    if (fault->vector == kVectorPageFault) cpu.cr2 = fault->fault_address.value();
    const FaultClass first = classify(current);
    const FaultClass second = classify(*fault);
    if (first == FaultClass::DoubleFault && becomes_double_fault(first, second)) {
      return Error{ModeError::kGuestTripleFault,
                   "triple fault: " + describe(*fault) +
                       " while delivering a double fault to the guest kernel (Intel SDM vol. 3A, "
                       "6.15: the CPU shuts down); check the guest's IDT, GDT, TSS and stacks"};
    }
    if (becomes_double_fault(first, second)) {
      current = Event{kVectorDoubleFault, 0u, EventSource::Exception};
    } else {
      current = *fault;
    }
  }
  return Error{ModeError::kGuestTripleFault,
               "event delivery did not converge for " + describe(event)};
}

void deliver_syscall(GuestRegisters& registers, VirtualCpu& cpu) {
  const std::uint64_t rflags = guest_visible_rflags(registers, cpu);
  registers.rcx = registers.rip;
  registers.r11 = rflags;
  registers.rip = cpu.lstar;
  set_guest_visible_rflags(registers, cpu, rflags & ~cpu.fmask);
  const auto selector = static_cast<std::uint16_t>((cpu.star >> 32) & 0xffff);
  cpu.cs = static_cast<std::uint16_t>(selector & 0xfffc);
  cpu.ss = static_cast<std::uint16_t>(selector + 8);
  cpu.cpl = 0;
}

}  // namespace vmlab::monitor
