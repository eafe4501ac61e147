// The monitor's instruction emulator for trap-and-emulate (DESIGN.md 1,
// `full`): the guest kernel runs at CPL3, so each privileged or
// IOPL-sensitive instruction it executes traps; the monitor decodes it (Zydis)
// and carries it out against the virtual CPU, or says which exception the
// guest takes instead, exactly as a CPU running the guest at CPL0 would.
#pragma once

#include <cstdint>
#include <string>

#include "vmlab/address.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/guest_context.hpp"

namespace vmlab::full {

// From the monitor every software technique shares (modes/monitor/).
using monitor::Event;
using monitor::GuestRegisters;
using monitor::GuestVirtualMemory;
using monitor::VirtualCpu;

// What emulation needs from the rest of the VMM.
class MonitorServices {
 public:
  virtual ~MonitorServices() = default;
  virtual std::uint32_t port_read(std::uint16_t port, unsigned size) = 0;  // size 1, 2 or 4
  virtual void port_write(std::uint16_t port, unsigned size, std::uint32_t value) = 0;
  virtual void cr3_written(std::uint64_t old_cr3, std::uint64_t new_cr3) = 0;  // every write
  virtual void page_invalidated(GuestVirtAddr address) = 0;                    // invlpg
  virtual void paging_control_changed() = 0;  // a paging bit of CR0, CR4 or EFER changed
};

enum class EmulationKind {
  Emulated,     // done; RIP is past the instruction, or wherever it transferred control
  Halt,         // hlt: RIP past it, vcpu.halted set; wait for a virtual interrupt
  Reflect,      // the guest takes `event` instead: deliver it with deliver_event
  Unsupported,  // the monitor cannot emulate this: stop the guest and report `detail`
};

struct MemoryRange {
  GuestVirtAddr address{};
  std::uint64_t length = 0;
};

struct Emulation {
  EmulationKind kind = EmulationKind::Unsupported;
  std::string mnemonic;  // Intel syntax ("out dx, al", "mov cr3, rax"); empty if undecodable
  std::uint8_t instruction_length = 0;  // 0 if undecodable
  Event event;                          // Reflect: RIP still at the instruction (a fault), or
                                        // for int n the event says how far the frame skips
  std::string detail;                   // Unsupported, and some Reflects: why
  // sti that set IF, mov ss: the CPU takes no interrupt before the next
  // instruction completes (Intel SDM vol. 2B STI; vol. 3A 6.8.3). The monitor
  // holds pending virtual interrupts until the guest's next trap.
  bool interrupt_shadow = false;
  MemoryRange written;  // emulate_memory_write: the guest-virtual bytes stored
};

// Decodes the instruction at regs.rip (fetched at the virtual CPL) that
// trapped with `trap` (usually #GP(0); also #UD, #NP, #GP(selector)) and
// carries it out against the virtual CPU. An emulated instruction advances
// RIP unless it transfers control. Privileged instructions at virtual CPL3
// are reflected as #GP(0), as the CPU does. The sensitive instructions that
// never trap at CPL3 (the x86 holes: pushf, popf, mov from a segment
// register, push fs/gs, lar, lsl, verr, verw, sgdt, sidt, sldt, str, smsw)
// are carried out as well, with the answer the virtual CPL would get: a
// binary translator that turns them into call-outs passes the default trap.
// An instruction that is neither privileged nor sensitive faulted on its own
// account: the trap itself is reflected. Undecodable bytes reflect #UD (#GP(0) if longer than 15
// bytes, #PF if fetching them faulted). Never throws, whatever the bytes.
Emulation emulate_privileged(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory,
                             MonitorServices& services,
                             const Event& trap = Event{kVectorGeneralProtection, 0u});

// A store the shadow pager trapped (the guest wrote one of its own page-table
// pages, mapped read-only in the shadow): decodes it and performs it through
// memory.write, which bypasses shadow protection, then advances RIP. Handles
// mov m,r / mov m,imm, xchg, add/sub/and/or/xor m,r|imm, (lock) cmpxchg,
// and stos/movs with or without rep. `written` says which bytes changed, so
// the shadow pager can resynchronize them. Reflects the guest's own #PF if
// its tables do not allow the store.
Emulation emulate_memory_write(GuestRegisters& registers, VirtualCpu& cpu,
                               GuestVirtualMemory& memory);

// iretq (Intel SDM vol. 2A IRET, IA-32e mode): pops RIP, CS, RFLAGS, RSP and
// SS at the current privilege, checks the code and stack segments in the
// virtual GDT, switches the virtual CPL to CS.RPL. IF and IOPL from the popped
// RFLAGS go to the virtual CPU (IOPL only at CPL0, IF only if CPL <= IOPL);
// RFLAGS keeps bit 1 set and VM and RF clear. Faults are reflected.
// emulate_privileged calls this for an iretq.
Emulation emulate_iretq(GuestRegisters& registers, VirtualCpu& cpu, GuestVirtualMemory& memory);

}  // namespace vmlab::full
