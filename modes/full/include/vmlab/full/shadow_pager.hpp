// Shadow page tables for trap-and-emulate (DESIGN.md 4): the real CR3 points
// at tables the monitor builds from the guest's, because the deprivileged
// guest kernel runs at CPL3 and its own tables cannot be used as they are.
//
// Two views per guest address space, both at CPL3:
//   kernel view (virtual CPL0): every present guest mapping, with U=1;
//   user view (virtual CPL3): only mappings with U=1 at every guest level.
// Both map the monitor region supervisor-only (U=0) in PML4 slot 511, and
// nothing else there: a guest mapping in slot 511 is never shadowed, the guest
// gets the #PF of an unmapped page (error code P=0). That is the cost of the
// monitor region: 512 GiB at the top of the address space the guest cannot use.
//
// Shadow leaves are 4 KiB (a guest 2 MiB or 1 GiB page is broken up on
// demand, PS never set) and point only at guest RAM, or at a device window
// the monitor lists. A guest entry pointing elsewhere (the monitor region, a
// hole) is treated as not present and the access is reflected with P=0: the
// guest sees an unmapped page, learns nothing about what lies there, and a
// guest kernel that demand-maps (the vmlab kernel) can still recover.
//
// Coherence. Every guest page table a shadow table is derived from ("mirrors")
// is mapped read-only in every shadow leaf that maps its frame, so each guest
// write to it faults and comes back as PageTableWrite; after emulating it the
// monitor calls guest_page_table_written(), which drops the shadow entries
// derived from the entries written (the "ptemod" cost). A frame that becomes a
// page table while writable shadow leaves map it is write-protected through a
// reverse map (guest frame -> writable shadow leaves), not a reset: the vmlab
// kernel turns freshly zeroed frames into page tables all the time. Because
// the shadow never holds a translation older than the guest's tables, shadow
// roots of other guest CR3s stay valid and are cached, and invlpg is cheap.
//
// Accessed and dirty flags (SDM vol. 3A, 4.8) are set in the guest's entries
// when a fill walks them. A shadow leaf is writable only once the guest leaf
// is dirty, so the first write to a clean page faults and sets D like hardware.
//
// Cost of fidelity left out: shadow leaves are write-back whatever the guest's
// PWT/PCD/PAT bits say, and global pages (G) are not used.
//
// Binary translation (`bt`, ShadowPagerConfig::translation_cache). The guest
// kernel must never execute its own pages, only the translation cache (TC):
//   - every kernel-view leaf of guest memory is no-execute (the real
//     EFER.NXE must then be set whatever the guest's), and a fetch the guest's
//     tables allow comes back as KernelFetch: translate, do not fill;
//   - the kernel view's PML4 slot 511 is user-accessible and points at a PDPT
//     of its own, which maps the monitor region supervisor-only as the other
//     view does and the TC user-accessible beside it; the user view does not
//     map the TC at all;
//   - frames holding translated code are write-protected like page tables
//     (protect_code_frame); a guest write to one comes back as CodeWrite, and
//     the code-write observer hears of every byte the monitor itself stores
//     there through walker().
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vmlab/address.hpp"
#include "vmlab/guest_memory.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/page_walker.hpp"
#include "vmlab/result.hpp"

namespace vmlab::full {

// From the monitor every software technique shares (modes/monitor/).
using monitor::AccessKind;
using monitor::PageWalk;
using monitor::PageWalker;
using monitor::PagingControls;
using monitor::PhysicalRange;

// Found by argument-dependent lookup when a kind converts to std::error_code
// (the kinds live in this namespace, the function in vmlab).
using vmlab::make_error_code;

// Why the shadow pager failed: its configuration, or the monitor itself. A
// fault the guest's own tables raise is no error (FaultResolution).
enum class ShadowPagingError {
  kInvalidLayout = 1,    // RAM, monitor region, device windows, virtual base or pool misplaced
  kPoolTooSmall,         // the table pool cannot hold the monitor mapping or one translation
  kReservedBitInShadow,  // the real CPU rejected a shadow entry (XD without the real EFER.NXE)
  kMonitorFault,         // a #PF at CPL0: the monitor touched an address outside its region
  kTableAccessFailed,    // a shadow table, or a guest entry's accessed flag, could not be written
};
constexpr const char* error_domain(ShadowPagingError) {
  return "shadow paging";
}

enum class ShadowView { Kernel, User };

struct ShadowPagerConfig {
  std::uint64_t guest_ram_size = 0;  // guest RAM is [0, guest_ram_size)
  PhysicalRange monitor{};           // mapped supervisor-only, read-write-execute
  GuestVirtAddr monitor_virtual_base{0xffffff8000000000ULL};  // must lie in PML4 slot 511
  PhysicalRange table_pool{};  // pages for shadow tables, inside `monitor`
  // Windows outside RAM that guest pages may map (MMIO), so the access
  // reaches the device as a KVM MMIO exit instead of a reflected #PF.
  std::vector<PhysicalRange> device_windows{};
  std::size_t cached_address_spaces = 4;  // guest CR3s whose shadow roots are kept
  // bt: the TC, mapped into the kernel view only (see above).
  struct TranslationCache {
    GuestVirtAddr virtual_base;        // in PML4 slot 511, in a 1 GiB slot the monitor does not use
    PhysicalRange physical;            // outside RAM, the monitor region and the device windows
    std::uint64_t writable_bytes = 0;  // [0, writable_bytes): pages the TC's code stores to
    std::uint64_t code_offset = 0;     // [code_offset, size): executable, the rest no-execute
  };
  std::optional<TranslationCache> translation_cache{};
};

// What the monitor does with a #PF the real CPU took on the shadow tables.
struct FaultResolution {
  enum class Kind {
    Filled,          // a shadow entry was installed: resume the guest, it retries
    ReflectToGuest,  // the guest's own tables fault: deliver #PF (CR2 = address)
    PageTableWrite,  // the guest writes one of its page tables: emulate the write
    // bt only:
    CodeWrite,    // the guest writes a frame holding translated code (physical_address)
    KernelFetch,  // the guest kernel may execute at `address`: run it from the TC
  };
  Kind kind = Kind::Filled;
  GuestVirtAddr address{};             // ReflectToGuest: the guest's CR2
  std::uint32_t guest_error_code = 0;  // ReflectToGuest (SDM 4.7)
  GuestPhysAddr physical_address;      // PageTableWrite, CodeWrite: the guest-physical address
};

// For the event log.
struct ShadowPagerCounters {
  std::uint64_t fills = 0;              // shadow leaves installed by handle_fault
  std::uint64_t reflections = 0;        // faults that were the guest's own
  std::uint64_t page_table_writes = 0;  // guest writes to its page tables
  // Shadow entries dropped because the guest entry they came from was written.
  std::uint64_t zaps = 0;
  // Writable shadow leaves made read-only because their frame became a page table.
  std::uint64_t write_protections = 0;
  // All shadow tables dropped: pool exhausted, paging controls changed, reset().
  std::uint64_t resets = 0;
  std::uint64_t page_invalidations = 0;  // invlpg
  std::uint64_t cr3_switches = 0;
  std::uint64_t cr3_cache_hits = 0;  // switches to an address space whose roots were kept
  std::uint64_t code_writes = 0;     // bt: guest writes to frames holding translated code
};

class ShadowPager {
 public:
  // Checks the layout (monitor region outside RAM, pool inside the monitor
  // region: kInvalidLayout; large enough: kPoolTooSmall) and maps the
  // monitor region. The pool is cleared
  // a table at a time as tables are handed out, so creating the pager touches
  // only the few pages the monitor mapping takes.
  // The pager is not movable: its walker reports writes to it.
  static Result<std::unique_ptr<ShadowPager>> create(GuestMemoryAccess& memory,
                                                     ShadowPagerConfig config);
  ShadowPager(const ShadowPager&) = delete;
  ShadowPager& operator=(const ShadowPager&) = delete;
  ~ShadowPager() = default;

  // A #PF the real CPU raised while `view` was loaded: the faulting address
  // (real CR2) and the hardware error code. An error means the monitor is
  // broken (kReservedBitInShadow, kMonitorFault, kTableAccessFailed,
  // kPoolTooSmall), not the guest.
  Result<FaultResolution> handle_fault(ShadowView view, GuestVirtAddr address,
                                       std::uint32_t hardware_error_code);

  // mov %cr3: the guest's address space changed. Also sets walker()'s root.
  void set_guest_cr3(std::uint64_t cr3);
  // CR0.WP, EFER.NXE (or MAXPHYADDR) changed: shadow rights depend on them,
  // so a change resets the shadow tables. Also sets walker()'s controls.
  void set_paging_controls(PagingControls controls);
  // invlpg: drops the shadow translation of `address` in both views.
  void invalidate_page(GuestVirtAddr address);
  // The guest wrote [address, address + length) of guest-physical memory:
  // drops the shadow entries derived from guest page-table entries there.
  // Cheap when the frame is not a page table, so any emulated write may call it.
  void guest_page_table_written(GuestPhysAddr address, std::uint64_t length = 8);
  // Drops every shadow table but the monitor mapping; refills lazily.
  void reset();

  // What to load into the real CR3 while the guest runs in `view`. It can
  // change after any call above (a new address space, a reset).
  GuestPhysAddr root(ShadowView view) const;
  // True once after a present shadow entry was removed or lost rights, so the
  // real TLB may still hold it (SDM 4.10.4): reload the real CR3 before
  // resuming the guest.
  bool take_tlb_flush_request();

  bool is_guest_page_table(GuestPhysAddr address) const;

  // bt (translation_cache configured). The frame holding `address` holds
  // translated code: no shadow leaf may let the guest write it. Unprotecting
  // lets later fills map it writable again.
  void protect_code_frame(GuestPhysAddr address);
  void unprotect_code_frame(GuestPhysAddr address);
  bool is_code_frame(GuestPhysAddr address) const;
  // Told the frame of every store the monitor makes through walker() to a
  // protected code frame (an emulated instruction, an exception frame).
  void set_code_write_observer(std::function<void(GuestPhysAddr frame)> observer);
  // Whether the TC's page at `offset` is writable to the guest kernel (the
  // interrupt-flag page is read-only while an interrupt waits for sti).
  Status set_translation_cache_page_writable(std::uint64_t offset, bool writable);
  const ShadowPagerCounters& counters() const { return m_counters; }
  std::size_t free_tables() const { return m_free.size(); }
  std::size_t table_capacity() const { return m_tables.size(); }
  const ShadowPagerConfig& config() const { return m_config; }

  // The guest's memory through its own tables (current CR3, PML4 slot 511
  // hidden, device windows allowed). Its writes are reported to
  // guest_page_table_written(), so an emulator that writes through it keeps
  // the shadow coherent without further calls.
  PageWalker& walker() { return m_walker; }

 private:
  enum class TableRole : std::uint8_t {
    Free,
    Monitor,   // maps the monitor region; built once, never freed
    Mirror,    // derived from one guest table at the same level
    Split,     // derived from one guest large-page entry above it
    Detached,  // a root for a guest CR3 outside RAM: only the monitor mapping
  };
  struct Table {
    TableRole role = TableRole::Free;
    unsigned level = 0;
    GuestPhysAddr guest_table;  // Mirror: the guest table's frame
  };
  struct EntryLocation {
    std::uint32_t table = 0;
    std::uint32_t index = 0;
    bool operator==(const EntryLocation&) const = default;
  };
  struct AddressSpace {
    GuestPhysAddr guest_root;                 // guest CR3 bits 51:12: its PML4
    std::array<std::uint32_t, 2> roots = {};  // indexed by ShadowView
    std::uint64_t last_use = 0;
  };
  enum class FillOutcome { Done, PoolExhausted };

  ShadowPager(GuestMemoryAccess& memory, ShadowPagerConfig config);
  Status build_monitor_mapping();
  Status build_translation_cache_mapping();
  // Maps [virtual_base, + size) under `pdpt`, leaf(offset) for each page;
  // records each leaf's place in `leaves` if given.
  Status map_region(std::uint32_t pdpt, GuestVirtAddr virtual_base, std::uint64_t size,
                    std::uint64_t table_flags,
                    const std::function<std::uint64_t(std::uint64_t)>& leaf,
                    std::vector<EntryLocation>* leaves = nullptr);
  std::uint64_t translation_cache_leaf(std::uint64_t offset, bool writable) const;

  GuestPhysAddr table_address(std::uint32_t table) const;
  std::uint32_t table_at(std::uint64_t entry) const;
  std::uint64_t entry(std::uint32_t table, unsigned index) const;
  void store(std::uint32_t table, unsigned index, std::uint64_t value);
  void clear_entry(std::uint32_t table, unsigned index);
  std::optional<std::uint32_t> allocate(TableRole role, unsigned level, GuestPhysAddr guest_table);
  void release(std::uint32_t table);
  void write_protect(GuestPhysAddr frame);
  void forget_writable_leaf(std::uint64_t frame, EntryLocation location);

  bool allocate_roots(AddressSpace& space);
  void release_space(const AddressSpace& space);
  void make_current_space();
  std::uint32_t current_root(ShadowView view) const;

  FillOutcome fill(ShadowView view, const PageWalk& walk, AccessKind access,
                   FaultResolution& resolution);
  std::uint64_t leaf_value(ShadowView view, const PageWalk& walk, AccessKind access) const;

  GuestMemoryAccess* m_memory;
  ShadowPagerConfig m_config;
  PageWalker m_walker;

  // One record per pool page, and 512 entries per pool page up to the
  // highest one handed out so far. The entries are a host copy of what is in
  // guest memory (the CPU may set A/D there; they are not used).
  std::vector<Table> m_tables;
  std::vector<std::uint64_t> m_entries;
  std::vector<std::uint32_t> m_free;
  std::uint32_t m_monitor_pdpt = 0;
  // bt: the kernel view's slot-511 PDPT (monitor and TC) and the table that
  // holds the TC's first leaves; 0 without a TC.
  std::uint32_t m_kernel_slot_pdpt = 0;
  std::vector<EntryLocation> m_translation_cache_leaves;  // per TC page
  std::unordered_set<std::uint64_t> m_code_frames;
  std::function<void(GuestPhysAddr)> m_code_write_observer;

  // Guest frame -> shadow tables mirroring it (frames in here are the tracked
  // page tables), and guest frame -> writable shadow leaves mapping it.
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> m_mirrors;
  std::unordered_map<std::uint64_t, std::vector<EntryLocation>> m_writable_leaves;

  std::vector<AddressSpace> m_spaces;
  std::size_t m_current = 0;
  std::uint64_t m_use_clock = 0;

  bool m_flush_requested = true;
  std::optional<Error> m_failure;  // a write to the pool failed: reported by handle_fault
  ShadowPagerCounters m_counters;
};

}  // namespace vmlab::full

VMLAB_ERROR_KINDS(vmlab::full::ShadowPagingError);
