// Validated direct paging for the para mode (DESIGN.md 1 and 4), as Xen's
// page-type system does it. The CPU walks the guest kernel's own 4-level
// tables (Intel SDM vol. 3A, 4.5); the guest runs at CPL3 and changes them
// only through mmu_update (and new_baseptr to switch roots), which the monitor
// checks here before anything reaches guest memory. What keeps the guest in:
//   - no entry in a validated table maps the monitor region or lies outside
//     guest RAM and the device windows;
//   - a page-table page is never writable through a validated table, so the
//     guest cannot change a table the CPU uses except through update();
//   - PML4 slot 511 of every pinned root holds the monitor's entry, and the
//     guest cannot write that slot.
//
// Model. Every 4 KiB guest frame is untyped or a page table of exactly one
// level (4: PML4, 3: PDPT, 2: PD, 1: PT) with a reference count: the validated
// entries that point at it as a table, plus its pins as a root. A frame also
// counts the writable leaf entries in validated tables that map it. A frame
// becomes typed when a validated entry first points at it (all its entries
// are validated then) and untyped when its count drops to 0 (all its entries'
// contributions are withdrawn). Each operation either succeeds or changes
// nothing: a failure while validating a new subtree undoes what that
// validation did.
//
// Simplifications, all conservative (they refuse, never allow, more than
// Xen would):
//   - whether an entry lets the guest write a frame is read from the R/W bit
//     of the leaf alone; a read-only parent entry (SDM 4.6.1) does not make a
//     writable leaf harmless here;
//   - 1 GiB pages are refused (VMLAB_EINVAL): counting writable mappings of
//     262144 frames per entry is not worth it for a teaching guest;
//   - a table may not point at itself or at a table of another level
//     (VMLAB_EBUSY), so the recursive "self-map" PML4 slot some kernels use
//     is refused (Xen allows it under extra rules);
//   - update() validates the new entry before withdrawing the old one, so
//     replacing the only reference to a page table by a writable mapping of
//     it in one request is refused: unmap first, then map.
//
// The CPU itself writes accessed and dirty flags into typed tables (SDM 4.8);
// neither changes what an entry contributes. Every other write into guest
// RAM bypasses this class: the monitor's own writes on the guest's behalf
// (hypercall results, event frames, string port input) must not land in a
// frame is_page_table() reports, or the books go stale; device DMA is kept
// out through the IOMMU (PageTableValidatorConfig::dma_remapping).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/dma_remapping.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/hypercall.h"
#include "vmlab/monitor/page_walker.hpp"
#include "vmlab/para/para_error.hpp"
#include "vmlab/result.hpp"

namespace vmlab::para {

using monitor::PhysicalRange;

struct PageTableValidatorConfig {
  std::uint64_t guest_ram_size = 0;  // guest frames are [0, guest_ram_size)
  PhysicalRange monitor{};           // no entry may map it, as a page or a table
  // MMIO windows outside RAM that a leaf may map, never a table.
  std::vector<PhysicalRange> device_windows{};
  // The PML4 slot that belongs to the monitor in every root: skipped when a
  // root is validated, overwritten with monitor_pml4_entry when it is pinned,
  // and refused to update().
  unsigned reserved_pml4_slot = 511;
  std::uint64_t monitor_pml4_entry = 0;  // maps the monitor region supervisor-only
  // MAXPHYADDR (CPUID 80000008h): bits 51:MAXPHYADDR of an entry are
  // reserved (SDM vol. 3A, 4.5, tables 4-15 to 4-20).
  unsigned physical_address_bits = 46;
  // A passthrough device's IOMMU, if the VM has one: a frame is protected
  // from device writes before it is read for validation and for as long as
  // it is a page table (Xen does the same for PV guests that own a device),
  // since a DMA into a validated table would bypass every rule above.
  DmaRemapping* dma_remapping = nullptr;
};

// The outcome of one mmu_update request.
struct UpdateResult {
  std::int64_t result = VMLAB_OK;  // VMLAB_OK or a VMLAB_E* code (abi/vmlab/hypercall.h)
  // A present entry of a table the CPU may use changed: translations derived
  // from it may be cached (SDM vol. 3A, 4.10.4.1), so the TLB must be flushed
  // before the guest runs again.
  bool flush_needed = false;
};

class PageTableValidator {
 public:
  // Checks the layout, refusing it with a ParaError: RAM whole 4 KiB pages,
  // inside `memory` and below 32 GiB (so no 32-bit count can overflow), the
  // monitor region and device windows outside RAM and apart, a slot in
  // [0, 512), a MAXPHYADDR in [32, 52], and a monitor entry that is present,
  // supervisor-only and points into the monitor region (a monitor PDPT in
  // guest RAM would be the guest's to rewrite).
  static Result<PageTableValidator> create(GuestMemoryAccess& memory,
                                           PageTableValidatorConfig config);

  // new_baseptr: makes `root` (a 4 KiB-aligned RAM frame) a PML4 the CPU may
  // load, validating it and everything below it unless it is one already, in
  // which case it gains a pin. Writes the monitor entry into the reserved slot.
  [[nodiscard]] std::int64_t pin_root(GuestPhysAddr root);
  // Drops one pin; a root left without pins becomes untyped, and so,
  // recursively, does every table only it referenced.
  [[nodiscard]] std::int64_t unpin_root(GuestPhysAddr root);

  // One mmu_update request: write `new_value` to the 8-byte entry at
  // `entry_pointer`. In a page table it must pass the rules of that table's
  // level (PML4 slot 511 is refused); in an untyped frame (a table being
  // built) it is written as it is, if the guest could not have written it
  // directly. Memory changes only when the result is VMLAB_OK.
  [[nodiscard]] UpdateResult update(GuestPhysAddr entry_pointer, std::uint64_t new_value);

  // Queries take any address inside the frame; outside RAM they answer 0.
  unsigned level_of(GuestPhysAddr frame) const;  // 0: untyped, else 1 to 4
  bool is_page_table(GuestPhysAddr frame) const { return level_of(frame) != 0; }
  std::uint32_t reference_count(GuestPhysAddr frame) const;
  std::uint32_t writable_mappings(GuestPhysAddr frame) const;
  std::size_t page_table_count() const { return m_page_table_count; }

  // Why the last failing call failed, naming the entry and the rule, e.g.
  // "entry 0xd0000063 at 0x103008 (level 1) maps the monitor region": for
  // trace events. Not cleared by successful calls.
  const std::string& last_error() const { return m_last_error; }
  const PageTableValidatorConfig& config() const { return m_config; }

 private:
  enum class Progress : std::uint8_t { Settled, Validating };
  struct FrameState {
    std::uint32_t references = 0;
    std::uint32_t writable_mappings = 0;
    std::uint8_t level = 0;  // 0: untyped
    // Typed tentatively while its entries are checked: a reference to it
    // from inside its own subtree is a loop.
    Progress progress = Progress::Settled;
  };
  using TableEntries = std::array<std::uint64_t, monitor::kPageTableEntries>;

  PageTableValidator(GuestMemoryAccess& memory, PageTableValidatorConfig config);

  std::int64_t validate_entry(std::uint64_t entry, unsigned level, GuestPhysAddr location);
  std::int64_t validate_leaf(std::uint64_t entry, unsigned level, GuestPhysAddr location);
  std::int64_t validate_table_pointer(std::uint64_t entry, unsigned level, GuestPhysAddr location);
  std::int64_t validate_new_table(std::uint64_t frame, unsigned level);
  void release_entry(std::uint64_t entry, unsigned level);
  void release_entries(const TableEntries& entries, unsigned level, unsigned count);
  void drop_reference(std::uint64_t frame);
  void protect_from_devices(std::uint64_t frame, bool protect);

  std::int64_t read_table(std::uint64_t frame, TableEntries& entries);
  std::uint64_t reserved_bits(std::uint64_t entry, unsigned level) const;
  bool skipped_slot(unsigned level, unsigned index) const;
  bool in_ram(GuestPhysAddr base, std::uint64_t size) const;
  bool in_device_window(GuestPhysAddr base, std::uint64_t size) const;
  bool overlaps_monitor(GuestPhysAddr base, std::uint64_t size) const;
  const FrameState* state_of(GuestPhysAddr address) const;
  std::int64_t fail(std::int64_t code, std::string detail);

  GuestMemoryAccess* m_memory;  // not a reference, so the validator can be moved
  PageTableValidatorConfig m_config;
  std::vector<FrameState> m_frames;  // indexed by guest frame number
  std::size_t m_page_table_count = 0;
  std::string m_last_error;
};

// "EBUSY: the frame is in use as another kind of page" and the like: the
// code's name and the ABI's meaning (abi/vmlab/hypercall.h).
std::string_view describe_result(std::int64_t code);

}  // namespace vmlab::para
