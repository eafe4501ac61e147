// The guest's own page tables, walked in software as the virtual CPU's MMU
// would walk them (Intel SDM vol. 3A, 4.5 "4-Level Paging"): the emulator
// reads and writes guest-virtual memory through it, and the shadow pager
// builds shadow entries from its walks (DESIGN.md 4).
//
// What the guest may reach: its page tables must lie in guest RAM
// [0, guest_ram_size), and a page may map RAM or a device window the monitor
// lists (MMIO). A guest entry that points anywhere else (the monitor region,
// a hole) is treated as not present: the guest takes the #PF it would take if
// the page were unmapped (error code P=0), which hides the monitor region
// without inventing a fault the architecture lacks.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/x86.hpp"

namespace vmlab::monitor {

constexpr unsigned kPageTableEntries = 512;
constexpr std::uint64_t kLargePageSize = 2 * MiB;
constexpr std::uint64_t kHugePageSize = GiB;

// The index of `address` in the paging structure of `level` (4: PML4, 3: PDPT,
// 2: PD, 1: PT), SDM vol. 3A, 4.5.4, figure 4-8.
constexpr unsigned table_index(GuestVirtAddr address, unsigned level) {
  return static_cast<unsigned>(address.value() >> (12 + 9 * (level - 1))) & 511;
}

enum class AccessKind { Read, Write, Fetch };

// The virtual CPU's paging controls that change what a walk allows.
struct PagingControls {
  bool write_protect = true;  // CR0.WP: supervisor writes honour R/W (SDM 4.6.1)
  bool no_execute = false;    // EFER.NXE: bit 63 is XD instead of reserved (SDM 4.5)
  // MAXPHYADDR as the guest sees it (CPUID 80000008h); bits 51:MAXPHYADDR of
  // an entry are reserved (SDM 4.5, tables 4-15 to 4-20).
  unsigned physical_address_bits = 52;

  static PagingControls from(const VirtualCpu& cpu);
  bool operator==(const PagingControls&) const = default;
};

// A guest-physical range [base, base + size).
struct PhysicalRange {
  GuestPhysAddr base{};
  std::uint64_t size = 0;
  bool contains(GuestPhysAddr address, std::uint64_t length = 1) const {
    return address >= base && length <= size && address.value() - base.value() <= size - length;
  }
};

struct PageWalkerOptions {
  // Guest-physical windows outside RAM that guest pages (never guest page
  // tables) may map: MMIO, a passthrough register window.
  std::vector<PhysicalRange> device_windows{};
  // A PML4 slot walks never enter, as if its entry were not present: 511 under
  // the shadow pager, where the monitor region lives.
  std::optional<unsigned> hidden_pml4_slot{};
};

// What the guest's tables say about one address, before any rights check:
// the entries used, top down, and the rights they combine to (SDM 4.6.1:
// R/W and U/S must be 1 at every level, XD 1 at any level forbids fetches).
struct PageWalk {
  enum class Outcome {
    Mapped,       // `level` is the level of the leaf entry: 1 (4 KiB), 2 (2 MiB), 3 (1 GiB)
    NotPresent,   // the entry at `level` is not present, or points outside guest RAM
    ReservedBit,  // the entry at `level` has a reserved bit set (SDM 4.7: P=1, RSVD=1)
  };
  GuestVirtAddr address{};
  Outcome outcome = Outcome::NotPresent;
  unsigned level = 4;
  // Indexed by level (1 to 4); valid from 4 down to `level`.
  std::array<std::uint64_t, 5> entries{};
  std::array<GuestPhysAddr, 5> entry_addresses{};
  bool writable = true;
  bool user = true;
  bool executable = true;
  GuestPhysAddr physical_address;  // Mapped: the translation of `address`

  std::uint64_t page_size() const { return std::uint64_t{1} << (12 + 9 * (level - 1)); }
  // Mapped: the guest-physical 4 KiB frame that holds `address`.
  GuestPhysAddr frame() const { return GuestPhysAddr(physical_address.value() & ~(kPageSize - 1)); }
  // The guest table that holds the entry at `level` (its 4 KiB frame).
  GuestPhysAddr table(unsigned table_level) const {
    return GuestPhysAddr(entry_addresses[table_level].value() & ~(kPageSize - 1));
  }
};

class PageWalker final : public GuestVirtualMemory {
 public:
  using Fault = GuestVirtualMemory::Fault;
  // Called after each guest-physical write done for write() (not for the
  // accessed and dirty bits the walker sets), so a shadow pager can drop what
  // it derived from a guest page table the emulator just changed.
  using WriteObserver = std::function<void(GuestPhysAddr address, std::uint64_t length)>;

  PageWalker(GuestMemoryAccess& memory, std::uint64_t guest_ram_size,
             PageWalkerOptions options = {});

  // The guest's CR3 (mov %cr3): bits 51:12 locate the PML4; the PCD/PWT and
  // PCID bits change nothing here.
  void set_root(std::uint64_t cr3) { m_cr3 = cr3; }
  std::uint64_t root() const { return m_cr3; }
  void set_controls(PagingControls controls) { m_controls = controls; }
  const PagingControls& controls() const { return m_controls; }
  void set_write_observer(WriteObserver observer) { m_observer = std::move(observer); }

  std::uint64_t guest_ram_size() const { return m_guest_ram_size; }
  // A 4 KiB frame the guest may keep page tables in: inside guest RAM.
  bool is_guest_ram(GuestPhysAddr frame) const;
  // A 4 KiB frame a guest page may map: guest RAM or a device window.
  bool is_mappable(GuestPhysAddr frame) const;

  // Reads the guest's tables for `address`; changes nothing. Canonical-address
  // checks (#GP, SDM 3.3.7.1) belong to the caller: the walk uses bits 47:0.
  PageWalk walk(GuestVirtAddr address) const;
  // The #PF the access would raise under that walk (SDM 4.7), or nullopt.
  std::optional<Fault> check(const PageWalk& walk, AccessKind access,
                             AccessPrivilege privilege) const;
  // Sets the accessed flags of the entries the walk used and, for a write, the
  // dirty flag of the leaf, as the processor does (SDM 4.8). Only for a walk
  // whose access passed check().
  Status mark_accessed(const PageWalk& walk, AccessKind access);
  // walk + check + mark_accessed: the guest-physical address, or the #PF.
  std::variant<GuestPhysAddr, Fault> translate(GuestVirtAddr address, AccessKind access,
                                               AccessPrivilege privilege);

  // The error code of a #PF for this access (SDM 4.7): I/D only when XD is
  // enabled (EFER.NXE; the vmlab guest never sets CR4.SMEP).
  std::uint32_t fault_error_code(bool present, AccessKind access, AccessPrivilege privilege,
                                 bool reserved_bit) const;

  // GuestVirtualMemory. An access that spans pages is checked on every page
  // before any byte moves or any accessed flag is set.
  std::optional<Fault> read(GuestVirtAddr address, std::span<std::uint8_t> out,
                            AccessPrivilege privilege) override;
  std::optional<Fault> write(GuestVirtAddr address, std::span<const std::uint8_t> in,
                             AccessPrivilege privilege) override;
  std::optional<Fault> fetch(GuestVirtAddr address, std::span<std::uint8_t> out,
                             AccessPrivilege privilege) override;

 private:
  struct Piece {
    PageWalk walk;
    std::uint64_t offset = 0;  // into the caller's buffer
    std::uint64_t length = 0;
  };
  // Translates every page of [address, address + length) or returns the first
  // fault in address order.
  std::variant<std::vector<Piece>, Fault> translate_range(GuestVirtAddr address,
                                                          std::uint64_t length, AccessKind access,
                                                          AccessPrivilege privilege) const;
  std::optional<Fault> copy_in(GuestVirtAddr address, std::span<std::uint8_t> out,
                               AccessKind access, AccessPrivilege privilege);
  std::uint64_t reserved_bits(std::uint64_t entry, unsigned level) const;

  GuestMemoryAccess* m_memory;
  std::uint64_t m_guest_ram_size;
  PageWalkerOptions m_options;
  std::uint64_t m_cr3 = 0;
  PagingControls m_controls;
  WriteObserver m_observer;
};

}  // namespace vmlab::monitor
