// The monitor region (DESIGN.md 4): guest-physical memory outside the guest's
// memory map that holds what the real CPU uses while the guest kernel runs
// deprivileged: the real GDT, IDT and TSS, one CPL0 entry stub per vector and
// one for SYSCALL, the monitor stack, and the pool of shadow page tables. The
// shadow tables map it supervisor-only at kMonitorVirtualBase (PML4 slot 511),
// so guest code at CPL3 cannot touch it.
#pragma once

#include <cstdint>
#include <optional>

#include "vmlab/address.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/physical_memory.hpp"
#include "vmlab/result.hpp"
#include "vmlab/x86.hpp"

namespace vmlab::monitor {

// Where the region lives: above the largest guest RAM (3 GiB), below the
// VT-x TSS/identity pages at 0xfffbc000.
constexpr std::uint64_t kMonitorPhysicalBase = 0xd0000000;
constexpr std::uint64_t kMonitorSize = 8 * MiB;
constexpr GuestVirtAddr kMonitorVirtualBase{0xffffff8000000000ULL};  // PML4 slot 511

// Layout, as offsets into the region.
constexpr std::uint64_t kGdtOffset = 0x0000;
constexpr std::uint64_t kIdtOffset = 0x1000;  // 256 16-byte gates
constexpr std::uint64_t kTssOffset = 0x2000;
constexpr std::uint64_t kStubsOffset = 0x3000;        // 256 stubs of kStubSize bytes
constexpr std::uint64_t kSyscallStubOffset = 0x3800;  // after the 256 stubs (8 bytes each)
constexpr std::uint64_t kStubSize = 8;
constexpr std::uint64_t kStackOffset = 0x4000;  // monitor stack, grows down from kStackTop
constexpr std::uint64_t kStackTopOffset = 0x8000;
constexpr std::uint64_t kFaultStackTopOffset = 0xa000;  // IST1: #DF, NMI, #MC
constexpr std::uint64_t kShadowPoolOffset = 0x10000;
constexpr std::uint64_t kShadowPoolSize = kMonitorSize - kShadowPoolOffset;

// The port every stub writes to: the exit that tells the VMM a trap arrived.
constexpr std::uint16_t kMonitorPort = 0xe8;

// Real GDT selectors. The guest's user selectors (0x1b data, 0x23 code) are
// the same as in the guest's own GDT, so user code that reads CS or SS sees
// what it would natively; the deprivileged guest kernel runs on 0x2b/0x33,
// which it can observe with `mov %cs` (one of the x86 holes).
constexpr std::uint16_t kMonitorCodeSelector = 0x08;      // DPL0, 64-bit
constexpr std::uint16_t kMonitorDataSelector = 0x10;      // DPL0
constexpr std::uint16_t kUserDataSelector = 0x1b;         // DPL3 (index 3)
constexpr std::uint16_t kUserCodeSelector = 0x23;         // DPL3, 64-bit (index 4)
constexpr std::uint16_t kGuestKernelCodeSelector = 0x2b;  // DPL3, 64-bit (index 5)
constexpr std::uint16_t kGuestKernelDataSelector = 0x33;  // DPL3 (index 6)
constexpr std::uint16_t kTssSelector = 0x38;              // 16-byte system descriptor
constexpr std::uint16_t kGdtLimit = 0x48 - 1;

constexpr GuestVirtAddr monitor_virtual(std::uint64_t offset) {
  return kMonitorVirtualBase + offset;
}
constexpr GuestPhysAddr monitor_physical(std::uint64_t offset) {
  return GuestPhysAddr(kMonitorPhysicalBase + offset);
}

// Writes the GDT, IDT, TSS and stubs into the region (through `memory`, which
// must cover it). `user_segments_present` is the present bit of the user code
// and data descriptors (DESIGN.md 4: cleared in virtual kernel mode so that
// the guest's iretq to user mode raises #NP and reaches the monitor).
Status build_monitor_region(GuestMemoryAccess& memory);
Status set_user_segments_present(GuestMemoryAccess& memory, bool present);

// Which stub a vCPU stopped in, from its RIP after the stub's `out`: a vector,
// or the SYSCALL stub. nullopt when RIP is not just past a stub's `out`.
struct StubHit {
  bool syscall = false;
  std::uint8_t vector = 0;
};
std::optional<StubHit> stub_at(GuestVirtAddr rip_after_out);

}  // namespace vmlab::monitor
