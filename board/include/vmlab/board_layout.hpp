// Where everything sits on the PC board, in one place (as cloud-hypervisor's
// arch/src/x86_64/layout.rs): every port range, guest-physical window, ISA
// interrupt line and KVM memory slot a vmlab VM uses. The board's
// attachments take their numbers from here and nowhere else. What the core
// (vmm/) and the CPU modes (modes/) assign themselves is listed too, marked
// with its owner, so that kAssignments covers the whole machine and the
// static_assert at the end (and tests/unit/board/layout_test.cpp, which also
// checks the numbers against the owners' own constants where they are
// public) finds any two that collide.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "vmlab/address.hpp"
#include "vmlab/machine.hpp"
#include "vmlab/memory_slots.hpp"
#include "vmlab/passthrough.h"

namespace vmlab::pc {

struct PortRange {
  std::uint16_t base = 0;
  std::uint16_t count = 0;
};

struct AddressRange {
  std::uint64_t base = 0;
  std::uint64_t size = 0;
};

// ---- Port I/O: the PC/AT's ISA map (QEMU's pc machine has the same) ----
inline constexpr PortRange kPicMasterPorts{0x20, 2};  // command, data
inline constexpr PortRange kPitPorts{0x40, 4};        // counters 0-2, control word
inline constexpr PortRange kRtcPorts{0x70, 2};        // index, data
inline constexpr PortRange kPicSlavePorts{0xa0, 2};
// modes/monitor (kMonitorPort): the port the full/para CPL0 stubs write to
// reach the VMM. Not on the board's bus: the mode takes the exit first.
inline constexpr PortRange kMonitorPorts{0xe8, 1};
inline constexpr PortRange kDebugConsolePorts{0xe9, 1};  // QEMU's isa-debugcon
inline constexpr PortRange kExitPorts{0xf4, 4};  // QEMU's isa-debug-exit,iobase=0xf4,iosize=4
inline constexpr PortRange kAtaCommandPorts{0x1f0, 8};  // primary channel, command block
inline constexpr PortRange kAtaControlPorts{0x3f6, 1};  // 0x3f7 is the floppy controller's
inline constexpr PortRange kUartPorts{0x3f8, 8};        // COM1

// ---- ISA interrupt lines (8259A inputs; KVM's GSIs 0-15 with --irqchip kernel) ----
inline constexpr std::uint32_t kPitIrq = 0;
inline constexpr std::uint32_t kCascadeIrq = 2;  // the slave 8259A's INT on the master's IR2
inline constexpr std::uint32_t kUartIrq = 4;
inline constexpr std::uint32_t kVirtioIrq = 5;  // free on the PC's ISA lines
// The RTC's line on a PC. The model raises no interrupt (devices/emulated/
// rtc_mc146818.hpp), so its device-table entry has none; the line stays
// reserved for it.
inline constexpr std::uint32_t kRtcIrq = 8;
inline constexpr std::uint32_t kPassthroughIrq = 11;  // free on the PC's ISA lines
inline constexpr std::uint32_t kAtaIrq = 14;
inline constexpr std::uint32_t kIsaIrqCount = 16;

// ---- Guest-physical address space ----
// vmm/ (Machine::create): guest RAM from address 0, at most 3 GiB.
inline constexpr AddressRange kGuestRam{0, kMaximumGuestMemory};
// modes/monitor (kMonitorPhysicalBase, kMonitorSize): the full/para monitor
// region, above the largest guest RAM.
inline constexpr AddressRange kMonitorRegion{0xd0000000, 8 * MiB};
// modes/bt (kTranslationCachePhysicalBase, CacheLayout::size): the
// translation cache of --cpu bt, just above the monitor region.
inline constexpr AddressRange kTranslationCacheRegion{0xd0800000, 4 * MiB};
// The passthrough controller's register window: one page just below the
// virtio window, memory in a KVM slot of its own (abi/vmlab/passthrough.h).
inline constexpr AddressRange kPassthroughWindow{0xfea00000, VMLAB_PT_WINDOW_SIZE};
// virtio-mmio, where QEMU's microvm puts its windows: below 4 GiB, above the
// monitor region (virtio 1.2, 4.2.2: the version 2 register layout).
inline constexpr AddressRange kVirtioMmioWindow{0xfeb00000, 0x200};
// KVM's in-kernel IOAPIC and local APIC (--irqchip kernel creates them).
inline constexpr AddressRange kKvmIoapic{0xfec00000, 0x1000};
inline constexpr AddressRange kKvmLocalApic{0xfee00000, 0x1000};
// vmm/src/machine.cpp: the pages VT-x needs for real mode
// (KVM_SET_IDENTITY_MAP_ADDR, one page; KVM_SET_TSS_ADDR, three).
inline constexpr AddressRange kVmxIdentityMap{0xfffbc000, 0x1000};
inline constexpr AddressRange kVmxTss{0xfffbd000, 0x3000};

// ---- KVM memory slots (KVM_SET_USER_MEMORY_REGION) ----
// vmm/include/vmlab/memory_slots.hpp: the core owns slot 0, modes/full and
// modes/para slots 1 and 2, the board slot 3, modes/bt slot 4.
using vmlab::MemorySlot;
using vmlab::slot_number;

// ---- The table ----
enum class ResourceKind { Ports, Addresses, IrqLine, MemorySlot };
// Who assigns a resource: this board, the core (vmm/), the software CPU modes
// (modes/), or KVM itself.
enum class Owner { Board, Core, CpuModes, Kvm };

struct Assignment {
  std::string_view user;
  ResourceKind kind;
  std::uint64_t base;  // port, address, IRQ line or slot number
  std::uint64_t size;  // ports or bytes; 1 for a line or a slot
  Owner owner;
};

constexpr Assignment ports(std::string_view user, PortRange range, Owner owner = Owner::Board) {
  return {user, ResourceKind::Ports, range.base, range.count, owner};
}
constexpr Assignment addresses(std::string_view user, AddressRange range,
                               Owner owner = Owner::Board) {
  return {user, ResourceKind::Addresses, range.base, range.size, owner};
}
constexpr Assignment irq_line(std::string_view user, std::uint32_t line) {
  return {user, ResourceKind::IrqLine, line, 1, Owner::Board};
}
constexpr Assignment memory_slot(std::string_view user, MemorySlot slot, Owner owner) {
  return {user, ResourceKind::MemorySlot, slot_number(slot), 1, owner};
}

inline constexpr Assignment kAssignments[] = {
    ports("i8259 master", kPicMasterPorts),
    ports("i8254 PIT", kPitPorts),
    ports("mc146818 RTC", kRtcPorts),
    ports("i8259 slave", kPicSlavePorts),
    ports("monitor stubs", kMonitorPorts, Owner::CpuModes),
    ports("debug console", kDebugConsolePorts),
    ports("exit port", kExitPorts),
    ports("ATA command block", kAtaCommandPorts),
    ports("ATA control block", kAtaControlPorts),
    ports("16550 UART", kUartPorts),

    irq_line("i8254 PIT", kPitIrq),
    irq_line("i8259 cascade", kCascadeIrq),
    irq_line("16550 UART", kUartIrq),
    irq_line("virtio-mmio", kVirtioIrq),
    irq_line("mc146818 RTC", kRtcIrq),
    irq_line("passthrough", kPassthroughIrq),
    irq_line("ATA", kAtaIrq),

    addresses("guest RAM", kGuestRam, Owner::Core),
    addresses("monitor region", kMonitorRegion, Owner::CpuModes),
    addresses("translation cache", kTranslationCacheRegion, Owner::CpuModes),
    addresses("passthrough window", kPassthroughWindow),
    addresses("virtio-mmio window", kVirtioMmioWindow),
    addresses("KVM IOAPIC", kKvmIoapic, Owner::Kvm),
    addresses("KVM local APIC", kKvmLocalApic, Owner::Kvm),
    addresses("VT-x identity map", kVmxIdentityMap, Owner::Core),
    addresses("VT-x TSS", kVmxTss, Owner::Core),

    memory_slot("guest RAM", MemorySlot::GuestRam, Owner::Core),
    memory_slot("monitor region", MemorySlot::MonitorRegion, Owner::CpuModes),
    memory_slot("shadow page-table pool", MemorySlot::ShadowPool, Owner::CpuModes),
    memory_slot("translation cache", MemorySlot::TranslationCache, Owner::CpuModes),
    memory_slot("passthrough window", MemorySlot::PassthroughWindow, Owner::Board),
};

// Two assignments of one kind that share a port, an address, a line or a
// slot; nullptr when there are none. Everything past 4 GiB of address space,
// ports past 0xffff and lines past the ISA's 16 count as collisions too.
struct Collision {
  const Assignment* first = nullptr;
  const Assignment* second = nullptr;
  constexpr explicit operator bool() const { return first != nullptr; }
};

constexpr std::uint64_t resource_limit(ResourceKind kind) {
  switch (kind) {
    case ResourceKind::Ports:
      return 0x10000;
    case ResourceKind::Addresses:
      return std::uint64_t{4} * GiB;  // the boot page tables identity-map 4 GiB
    case ResourceKind::IrqLine:
      return kIsaIrqCount;
    case ResourceKind::MemorySlot:
      return 32;  // KVM_USER_MEM_SLOTS is at least 32 on every x86 host
  }
  return 0;
}

constexpr Collision find_collision(std::span<const Assignment> table) {
  for (std::size_t first = 0; first < table.size(); ++first) {
    const Assignment& one = table[first];
    const std::uint64_t limit = resource_limit(one.kind);
    if (one.size == 0 || one.base >= limit || one.size > limit - one.base) return {&one, &one};
    for (std::size_t second = first + 1; second < table.size(); ++second) {
      const Assignment& other = table[second];
      if (other.kind != one.kind) continue;
      if (one.base < other.base + other.size && other.base < one.base + one.size) {
        return {&one, &other};
      }
    }
  }
  return {};
}

static_assert(!find_collision(kAssignments), "two users of one port, address, IRQ or slot");
static_assert(kGuestRam.base + kGuestRam.size <= kMonitorRegion.base,
              "the monitor region lies above the largest guest RAM");

}  // namespace vmlab::pc
