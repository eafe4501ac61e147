// Delivering exceptions, interrupts and system calls into the deprivileged
// guest kernel exactly as a 64-bit CPU would (DESIGN.md 5): the monitor reads
// the guest's own IDT, TSS and GDT through guest memory, builds the hardware
// frame on the guest kernel's stack and resumes at the guest's handler.
#pragma once

#include <cstdint>
#include <optional>

#include "vmlab/address.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/result.hpp"
#include "vmlab/x86.hpp"

namespace vmlab::monitor {

// Where an event comes from decides the gate checks, the EXT bit of error
// codes raised while delivering it, and the double-fault class (Intel SDM vol.
// 3A, 6.4, 6.13, 6.15).
enum class EventSource {
  Exception,          // detected by the processor: fault, trap or abort
  ExternalInterrupt,  // from the interrupt controller (or an NMI)
  Software,           // int n, int3: the gate's DPL is checked against CPL
};

// One exception or interrupt for the guest kernel.
struct Event {
  std::uint8_t vector = 0;
  std::optional<std::uint32_t> error_code;
  EventSource source = EventSource::Exception;
  GuestVirtAddr fault_address{};        // #PF: loaded into the virtual CR2 as it is raised
  std::uint8_t instruction_length = 0;  // Software: regs.rip is the int instruction; the frame
                                        // holds rip + length (0 if rip is already past it)
};

// The guest as it sees RFLAGS: the hardware bits from regs.rflags with the
// virtual IF and IOPL merged in, bit 1 set.
std::uint64_t guest_visible_rflags(const GuestRegisters& registers, const VirtualCpu& cpu);

// Stores a guest-visible RFLAGS value: IF and IOPL go to the virtual CPU (and
// stay mirrored in regs.rflags, the guest's view); bit 1 is forced on.
void set_guest_visible_rflags(GuestRegisters& registers, VirtualCpu& cpu, std::uint64_t rflags);

// Canonical for the virtual CPU's paging mode: 48 bits, 57 with CR4.LA57
// (Intel SDM vol. 1, 3.3.7.1).
bool is_canonical(GuestVirtAddr address, const VirtualCpu& cpu);

// A segment or system descriptor (Intel SDM vol. 3A, 3.4.5; the 16-byte
// system descriptors of 64-bit mode, 8.2.3 and 6.14.1).
struct SegmentDescriptor {
  std::uint64_t base = 0;
  std::uint32_t limit = 0;  // in bytes - 1, granularity applied
  std::uint8_t type = 0;    // the 4-bit type field
  bool system = false;      // S = 0: TSS, LDT or gate
  std::uint8_t privilege_level = 0;
  bool present = false;
  bool long_mode = false;       // L: 64-bit code segment
  bool default_size = false;    // D/B
  std::uint8_t upper_type = 0;  // 16-byte descriptors: type field of the upper half, must be 0

  bool is_code() const { return !system && (type & 0x8) != 0; }
  bool is_conforming_code() const { return is_code() && (type & 0x4) != 0; }
  bool is_readable() const { return !system && (!is_code() || (type & 0x2) != 0); }
  bool is_writable_data() const { return !system && !is_code() && (type & 0x2) != 0; }
  bool is_64bit_code() const { return is_code() && long_mode && !default_size; }
};

// Decodes a descriptor from its two quadwords (high is the upper half of a
// 16-byte system descriptor, 0 for an 8-byte one).
SegmentDescriptor decode_segment_descriptor(std::uint64_t low, std::uint64_t high = 0);

enum class DescriptorSize { Segment8, System16 };

// A value, or the exception the guest takes instead.
template <typename T>
struct [[nodiscard]] OrFault {
  T value{};
  std::optional<Event> fault;
};

// Reads the descriptor that `selector` names from the virtual GDT, as a
// supervisor access. Faults: #GP(selector) for a selector past the GDT limit
// or in the LDT (which the virtual CPU does not model), #PF reading it. The
// caller checks null selectors first.
OrFault<SegmentDescriptor> read_gdt_descriptor(const VirtualCpu& cpu, GuestVirtualMemory& memory,
                                               std::uint16_t selector, DescriptorSize size);

// Delivers `event` to the guest kernel as the CPU does in 64-bit mode (Intel
// SDM vol. 3A, 6.12.1 and 6.14): gate from the virtual IDT, target code
// segment from the virtual GDT, stack from the virtual TSS (RSPn on a
// privilege change, ISTn if the gate names one), the frame SS, RSP, RFLAGS,
// CS, RIP [, error code] pushed at a 16-byte aligned RSP, then RIP = handler,
// CPL = the handler's, SS = null on a privilege change, IF cleared by an
// interrupt gate. A fault while delivering becomes the next event by the
// double-fault rules (6.15, Table 6-5); a fault while delivering #DF is a
// triple fault, returned as ModeError::kGuestTripleFault: the VMM stops the
// guest. Clears
// vcpu.halted (an event wakes a halted CPU).
Result<void> deliver_event(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                           const Event& event);

inline Result<void> deliver_event(GuestRegisters& registers, VirtualCpu& cpu,
                                  GuestVirtualMemory& memory, std::uint8_t vector,
                                  std::optional<std::uint32_t> error_code, EventSource source) {
  return deliver_event(registers, cpu, memory, Event{vector, error_code, source});
}

// SYSCALL (Intel SDM vol. 2B SYSCALL; vol. 3A 5.8.8): RCX = regs.rip, which
// the caller has already set to the instruction after the syscall; R11 = the
// guest-visible RFLAGS; RIP = LSTAR; RFLAGS &= ~FMASK (virtual IF and IOPL
// included); CPL 0, CS = STAR[47:32], SS = STAR[47:32] + 8. The caller checks
// EFER.SCE first (emulate_privileged does, for a syscall that raised #UD).
void deliver_syscall(GuestRegisters& registers, VirtualCpu& cpu);

}  // namespace vmlab::monitor
