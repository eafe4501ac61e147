// Where the translation cache (TC) of `--cpu bt` lives and what its pages
// hold (DESIGN.md 1, `bt`). The TC is one region of guest memory that the VMM
// maps into the guest kernel's shadow view at a fixed guest-virtual address in
// the monitor's part of the address space; guest-kernel code runs only from
// there, at CPL3, with the guest's registers live in the real ones.
//
//   page 0          the interrupt-flag page: byte 0 is the virtual IF
//   page 1          the scratch page (ScratchPage below)
//   page 2 ...      the indirect-branch table, read-only to the guest
//   the rest        the code area: the shared lookup routine, then blocks
//
// Every address the TC's own code names (the two pages, the table) is reached
// RIP-relative, so the region must be smaller than 2 GiB (Intel SDM vol. 2A,
// 2.2.1.6: RIP-relative addressing has a signed 32-bit displacement).
#pragma once

#include <cstddef>
#include <cstdint>

#include "vmlab/address.hpp"
#include "vmlab/monitor/monitor_region.hpp"

namespace vmlab::bt {

struct CacheLayout {
  // Guest-virtual address of page 0. The default sits 1 GiB into the
  // monitor's PML4 slot; a host-side test passes a low address it can mmap.
  GuestVirtAddr base{monitor::kMonitorVirtualBase + 0x40000000};
  std::uint64_t size = 4 * MiB;                   // the whole region, a multiple of the page size
  std::uint64_t indirect_entries = 4096;          // a power of two; 16 bytes each
  std::uint32_t maximum_block_instructions = 32;  // guest instructions per block at most
  // Each block is placed at its guest address modulo this many bytes (a
  // power of two, at most a page), the gap before it int3, which nothing
  // reaches. 64 is a cache line on every x86-64 CPU (Intel SDM vol. 3A,
  // 12.1): a compiler aligns loop heads and functions for instruction fetch
  // (.p2align 4 to 6), and a block that starts there keeps that alignment in
  // the TC instead of starting wherever the block before it ended. It costs
  // space (kernel-compute: 8 KiB of int3 in 14 KiB). On the kvm_pvm Xeon of
  // PLATFORM.md it changed nothing measurable (kernel-compute's loop, 43 TC
  // bytes: 4.13 cycles per round aligned, 4.11 not, where it straddled two
  // lines); it is kept for front ends that do care. 1: blocks back to back.
  std::uint64_t block_alignment = 64;
  // How many more blocks each translation translates ahead: the targets of
  // its direct branches and the return addresses of its calls, breadth
  // first, chained to one another and (return addresses) entered in the
  // indirect-branch table, so that the guest's first run through new code
  // leaves the TC once, not once per branch. Never flushes for them: they
  // go in only while the code area has room. 0: translate on demand only.
  std::uint32_t translate_ahead = 0;

  std::uint64_t interrupt_flag_offset() const { return 0; }
  std::uint64_t scratch_offset() const { return kPageSize; }
  std::uint64_t indirect_table_offset() const { return 2 * kPageSize; }
  std::uint64_t code_offset() const {
    const std::uint64_t table_bytes = indirect_entries * 16;
    return indirect_table_offset() + (table_bytes + kPageSize - 1) / kPageSize * kPageSize;
  }

  GuestVirtAddr interrupt_flag_address() const { return base + interrupt_flag_offset(); }
  GuestVirtAddr scratch_address() const { return base + scratch_offset(); }
  GuestVirtAddr indirect_table_address() const { return base + indirect_table_offset(); }
  GuestVirtAddr code_address() const { return base + code_offset(); }
  GuestVirtAddr end() const { return base + size; }
};

// The scratch page (page 1). The TC's sequences borrow rax, rcx and rdx and
// park the guest's values in the save slots; the lookup routine passes the
// target of an indirect branch through the two target slots. The VMM reads
// the slots only to rebuild the guest's registers after a stop inside such a
// sequence (TranslationCache::recover_guest_registers does it).
//
// The virtual values below are what the inline sequences for the sensitive
// unprivileged instructions read (pushf, mov from a segment register, push
// fs/gs, sgdt/sidt/sldt/str/smsw; translation_cache.hpp) and popf writes
// (IOPL and AC in virtual_rflags). The VMM writes them before the guest
// kernel runs from the TC whenever they changed (BtMode::publish_virtual_cpu).
//
// The guest can write this page (the TC runs at CPL3 and stores to it), so
// the VMM never takes a value from it as the virtual CPU's truth, except the
// guest's own IOPL (2 bits) and AC, which a CPL0 popf could set anyway.
struct ScratchPage {
  std::uint64_t saved_rax = 0;     // the guest's rax while a sequence borrows it
  std::uint64_t saved_rcx = 0;     // the guest's rcx (indirect branches carry the target in rcx)
  std::uint64_t saved_rdx = 0;     // the guest's rdx
  std::uint64_t guest_target = 0;  // the guest address an indirect branch goes to
  std::uint64_t tc_target = 0;     // its TC address, for the lookup routine's final jump
  // The virtual IOPL (bits 12-13) and AC (bit 18), and nothing else: the
  // virtual IF is the flag byte.
  std::uint64_t virtual_rflags = 0;
  std::uint64_t cs = 0, ss = 0, ds = 0, es = 0, fs = 0, gs = 0;  // selectors the guest loaded
  std::uint64_t gdtr_base = 0, gdtr_limit = 0;
  std::uint64_t idtr_base = 0, idtr_limit = 0;
  std::uint64_t ldtr = 0, tr = 0;  // selectors
  // The whole virtual CR0: smsw stores its low 16 bits to memory, and to a
  // register CR0 truncated to the operand size (Intel SDM vol. 2B SMSW, "In
  // 64-bit mode": r64 gets all of it).
  std::uint64_t cr0 = 0;

  bool operator==(const ScratchPage&) const = default;
};
static_assert(offsetof(ScratchPage, saved_rax) == 0x00);
static_assert(offsetof(ScratchPage, saved_rcx) == 0x08);
static_assert(offsetof(ScratchPage, saved_rdx) == 0x10);
static_assert(offsetof(ScratchPage, guest_target) == 0x18);
static_assert(offsetof(ScratchPage, tc_target) == 0x20);
static_assert(offsetof(ScratchPage, virtual_rflags) == 0x28);
static_assert(offsetof(ScratchPage, cs) == 0x30);
static_assert(offsetof(ScratchPage, gs) == 0x58);
static_assert(offsetof(ScratchPage, gdtr_base) == 0x60);
static_assert(offsetof(ScratchPage, idtr_limit) == 0x78);
static_assert(offsetof(ScratchPage, tr) == 0x88);
static_assert(offsetof(ScratchPage, cr0) == 0x90);
static_assert(sizeof(ScratchPage) <= kPageSize);

// One entry of the indirect-branch table, at index (guest_address &
// (indirect_entries - 1)). An empty entry holds kEmptyGuestAddress, which is
// not canonical (Intel SDM vol. 1, 3.3.7.1), so no branch target that the
// guest could reach without a #GP matches it; its TC address is an exit site
// all the same, so even that match leaves to the VMM instead of running
// something arbitrary.
struct IndirectEntry {
  std::uint64_t guest_address = 0;
  std::uint64_t tc_address = 0;
};
static_assert(sizeof(IndirectEntry) == 16);
constexpr std::uint64_t kEmptyGuestAddress = 0x8000000000000000ULL;

}  // namespace vmlab::bt
