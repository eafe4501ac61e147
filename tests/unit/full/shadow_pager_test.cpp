#include "vmlab/full/shadow_pager.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <random>
#include <set>
#include <string>

#include "../monitor/guest_page_tables.hpp"

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)

using namespace monitor::testing;  // NOLINT(google-build-using-namespace)
using Fault = GuestVirtualMemory::Fault;

constexpr std::uint64_t kMemorySize = 16 * MiB;
constexpr std::uint64_t kRamSize = 8 * MiB;  // then a hole, then the monitor region
constexpr std::uint64_t kHole = 9 * MiB;
constexpr std::uint64_t kMonitorBase = 12 * MiB;
constexpr std::uint64_t kMonitorSize = 4 * MiB;
constexpr std::uint64_t kPoolOffset = 64 * KiB;
constexpr GuestVirtAddr kMonitorVirtual{0xffffff8000000000ULL};

// The guest's layout, after the vmlab kernel's (guest/kernel/memory.c, task.c).
constexpr std::uint64_t kKernelImageFrame = 0x100000;
constexpr GuestVirtAddr kKernelImage{kKernelImageFrame};   // identity, 4 KiB, supervisor
constexpr GuestVirtAddr kPhysicalMap{0x0000008000000000};  // all RAM, 2 MiB, supervisor
constexpr GuestVirtAddr kUserPage{0x400000};
constexpr std::uint64_t kUserFrame = 0x600000;
constexpr std::uint64_t kFirstTableFrame = 0x700000;

ShadowPagerConfig make_config(std::uint64_t pool_pages) {
  ShadowPagerConfig config;
  config.guest_ram_size = kRamSize;
  config.monitor = {GuestPhysAddr(kMonitorBase), kMonitorSize};
  config.monitor_virtual_base = kMonitorVirtual;
  config.table_pool = {GuestPhysAddr(kMonitorBase + kPoolOffset), pool_pages * kPageSize};
  return config;
}

constexpr std::uint64_t kLargePool = (kMonitorSize - kPoolOffset) / kPageSize;

// The real MMU: walks the shadow tables at CPL3 (the deprivileged guest's
// privilege in both views), with CR0.WP=1 and the real EFER.NXE following the
// guest's, over all of memory.
class Hardware {
 public:
  explicit Hardware(GuestMemoryAccess& memory) : m_mmu(memory, memory.size()) {}

  PageWalk walk(GuestPhysAddr root, GuestVirtAddr address, bool no_execute) {
    m_mmu.set_root(root.value());
    m_mmu.set_controls({.write_protect = true, .no_execute = no_execute});
    return m_mmu.walk(address);
  }
  std::optional<Fault> access(GuestPhysAddr root, GuestVirtAddr address, AccessKind access,
                              bool no_execute, AccessPrivilege privilege = AccessPrivilege::User) {
    return m_mmu.check(walk(root, address, no_execute), access, privilege);
  }

 private:
  PageWalker m_mmu;
};

struct Outcome {
  bool completed = false;
  FaultResolution resolution;
  unsigned fills = 0;
};

class ShadowPagerTest : public ::testing::Test {
 protected:
  ShadowPagerTest()
      : m_memory(std::move(*GuestMemory::create(kMemorySize))),
        m_tables(m_memory, kFirstTableFrame),
        m_hardware(m_memory) {
    build_kernel_layout(m_tables);
    create(kLargePool);
  }

  void create(std::uint64_t pool_pages) {
    auto pager = ShadowPager::create(m_memory, make_config(pool_pages));
    ASSERT_TRUE(pager.ok()) << pager.error().message;
    m_pager = std::move(*pager);
    m_pager->set_guest_cr3(m_tables.root());
  }

  // As a user task's tables: PML4 and PDPT entries with U in slot 0, the
  // kernel image under a supervisor PDE, the physical map supervisor.
  static void build_kernel_layout(GuestPageTables& tables) {
    tables.map(kUserPage, kUserFrame, kP | kW | kU);
    tables.map(kUserPage + kPageSize, kUserFrame + kPageSize, kP | kW | kU);
    const std::uint64_t kernel_tables = kP | kW;
    for (std::uint64_t page = 0; page < 4; ++page) {
      const std::uint64_t identity = kKernelImageFrame + page * kPageSize;
      tables.map(GuestVirtAddr(identity), identity, kP | kW, 1, kernel_tables);
    }
    for (std::uint64_t chunk = 0; chunk < kRamSize; chunk += 2 * MiB) {
      tables.map(kPhysicalMap + chunk, chunk, kP | kW, 2, kernel_tables);
    }
  }

  bool no_execute() { return m_pager->walker().controls().no_execute; }

  // One guest access as the real CPU and the monitor together perform it:
  // hardware walk of the shadow, and on a #PF the pager, until the access
  // completes or the pager hands it back.
  Outcome run(ShadowView view, GuestVirtAddr address, AccessKind access) {
    Outcome outcome;
    for (unsigned attempt = 0; attempt < 3; ++attempt) {
      auto fault = m_hardware.access(m_pager->root(view), address, access, no_execute());
      if (!fault) {
        outcome.completed = true;
        return outcome;
      }
      EXPECT_NE(fault->error_code & kPageFaultUser, 0u);
      auto resolution = m_pager->handle_fault(view, address, fault->error_code);
      if (!resolution.ok()) {
        ADD_FAILURE() << resolution.error().message;
        return outcome;
      }
      outcome.resolution = *resolution;
      if (resolution->kind != FaultResolution::Kind::Filled) return outcome;
      ++outcome.fills;
      if (outcome.fills > 1) ADD_FAILURE() << "a fill did not make the access succeed";
    }
    return outcome;
  }

  PageWalk shadow_walk(ShadowView view, GuestVirtAddr address) {
    return m_hardware.walk(m_pager->root(view), address, no_execute());
  }
  std::uint64_t shadow_leaf(ShadowView view, GuestVirtAddr address) {
    const PageWalk walk = shadow_walk(view, address);
    return walk.outcome == PageWalk::Outcome::Mapped ? walk.entries[walk.level] : 0;
  }

  // An emulated guest store to its own page-table entry: what the monitor
  // does on PageTableWrite, through the pager's walker (which reports it).
  void guest_store(GuestVirtAddr address, std::uint64_t value,
                   AccessPrivilege privilege = AccessPrivilege::Supervisor) {
    std::array<std::uint8_t, 8> bytes{};
    std::memcpy(bytes.data(), &value, sizeof value);
    EXPECT_FALSE(m_pager->walker().write(address, bytes, privilege));
  }

  GuestMemory m_memory;
  GuestPageTables m_tables;
  Hardware m_hardware;
  std::unique_ptr<ShadowPager> m_pager;
};

constexpr auto kKernel = ShadowView::Kernel;
constexpr auto kUser = ShadowView::User;

void expect_reflected(const Outcome& outcome, GuestVirtAddr address, std::uint32_t error_code) {
  EXPECT_FALSE(outcome.completed);
  EXPECT_EQ(outcome.resolution.kind, FaultResolution::Kind::ReflectToGuest);
  EXPECT_EQ(outcome.resolution.address, address);
  EXPECT_EQ(outcome.resolution.guest_error_code, error_code);
}

TEST_F(ShadowPagerTest, MonitorRegionIsSupervisorOnlyInBothViews) {
  for (ShadowView view : {kKernel, kUser}) {
    const PageWalk walk = shadow_walk(view, kMonitorVirtual + 0x3008);
    ASSERT_EQ(walk.outcome, PageWalk::Outcome::Mapped);
    EXPECT_EQ(walk.physical_address.value(), kMonitorBase + 0x3008);
    EXPECT_EQ(walk.level, 1u);
    EXPECT_FALSE(walk.user);
    EXPECT_TRUE(walk.writable);
    EXPECT_TRUE(walk.executable);
    EXPECT_FALSE(m_hardware.access(m_pager->root(view), kMonitorVirtual + (kMonitorSize - 1),
                                   AccessKind::Fetch, true, AccessPrivilege::Supervisor));
    EXPECT_EQ(
        m_hardware.access(m_pager->root(view), kMonitorVirtual, AccessKind::Read, true)->error_code,
        kPageFaultPresent | kPageFaultUser);
    // Nothing past the region.
    EXPECT_TRUE(m_hardware.access(m_pager->root(view), kMonitorVirtual + kMonitorSize,
                                  AccessKind::Read, true, AccessPrivilege::Supervisor));
  }
  // Also for a guest CR3 outside RAM, where nothing else is mapped.
  m_pager->set_guest_cr3(kMonitorBase);
  EXPECT_EQ(shadow_walk(kKernel, kMonitorVirtual).physical_address.value(), kMonitorBase);
  expect_reflected(run(kKernel, kKernelImage, AccessKind::Read), kKernelImage, 0);
}

TEST_F(ShadowPagerTest, BeforeTheFirstCr3OnlyTheMonitorIsMapped) {
  auto pager = ShadowPager::create(m_memory, make_config(64));
  ASSERT_TRUE(pager.ok());
  ShadowPager& fresh = **pager;
  for (ShadowView view : {kKernel, kUser}) {
    EXPECT_EQ(m_hardware.walk(fresh.root(view), kMonitorVirtual, false).physical_address.value(),
              kMonitorBase);
  }
  EXPECT_FALSE(fresh.is_guest_page_table(GuestPhysAddr(0)));
  auto resolution = fresh.handle_fault(kKernel, GuestVirtAddr(0x1000), kPageFaultUser);
  ASSERT_TRUE(resolution.ok());
  EXPECT_EQ(resolution->kind, FaultResolution::Kind::ReflectToGuest);
}

TEST_F(ShadowPagerTest, KernelViewShowsSupervisorPagesToCpl3) {
  Outcome outcome = run(kKernel, kKernelImage + 0x10, AccessKind::Read);
  EXPECT_TRUE(outcome.completed);
  EXPECT_EQ(outcome.fills, 1u);
  const PageWalk walk = shadow_walk(kKernel, kKernelImage + 0x10);
  EXPECT_EQ(walk.physical_address.value(), kKernelImageFrame + 0x10);
  EXPECT_TRUE(walk.user);
  EXPECT_TRUE(run(kKernel, kKernelImage, AccessKind::Fetch).completed);
  EXPECT_TRUE(run(kKernel, kUserPage, AccessKind::Write).completed);  // user pages too
  EXPECT_EQ(m_pager->counters().fills, 2u);
}

TEST_F(ShadowPagerTest, UserViewOmitsSupervisorPages) {
  expect_reflected(run(kUser, kKernelImage + 4, AccessKind::Read), kKernelImage + 4,
                   kPageFaultPresent | kPageFaultUser);
  expect_reflected(run(kUser, kPhysicalMap + kUserFrame, AccessKind::Write),
                   kPhysicalMap + kUserFrame, kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  EXPECT_EQ(shadow_leaf(kUser, kKernelImage), 0u);
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Write).completed);
  EXPECT_EQ(m_pager->counters().reflections, 2u);
  // Not present in the guest's tables: P=0.
  expect_reflected(run(kUser, GuestVirtAddr(0x5000000), AccessKind::Write),
                   GuestVirtAddr(0x5000000), kPageFaultWrite | kPageFaultUser);
}

TEST_F(ShadowPagerTest, LargeGuestPagesBecomeFourKibLeaves) {
  constexpr GuestVirtAddr kAddress = kPhysicalMap + (2 * MiB + 0x5123);
  EXPECT_TRUE(run(kKernel, kAddress, AccessKind::Read).completed);
  const PageWalk walk = shadow_walk(kKernel, kAddress);
  EXPECT_EQ(walk.level, 1u);
  EXPECT_EQ(walk.physical_address.value(), 2 * MiB + 0x5123);
  for (unsigned level = 4; level >= 2; --level) {
    EXPECT_EQ(walk.entries[level] & page_entry::kLargePage, 0u);
  }
  // The neighbour 4 KiB piece is its own fill.
  EXPECT_EQ(shadow_leaf(kKernel, kAddress + kPageSize), 0u);

  // A 1 GiB guest page.
  constexpr GuestVirtAddr kHuge{0x40000000};
  m_tables.map(kHuge, 0, kP | kW | kU, 3);
  EXPECT_TRUE(run(kUser, kHuge + 0x345678, AccessKind::Read).completed);
  const PageWalk huge = shadow_walk(kUser, kHuge + 0x345678);
  EXPECT_EQ(huge.level, 1u);
  EXPECT_EQ(huge.physical_address.value(), 0x345678u);
  // Pieces of a large page mirror no guest table: nothing new is write-protected.
  EXPECT_FALSE(m_pager->is_guest_page_table(GuestPhysAddr(0)));
  EXPECT_TRUE(run(kUser, kHuge + 0x345678, AccessKind::Write).completed);
  EXPECT_NE(shadow_leaf(kUser, kHuge + 0x345678) & kW, 0u);
}

TEST_F(ShadowPagerTest, CleanPagesAreReadOnlyUntilTheFirstWriteSetsDirty) {
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  EXPECT_EQ(shadow_leaf(kUser, kUserPage) & kW, 0u);
  EXPECT_EQ(m_tables.get(kUserPage, 1) & (page_entry::kAccessed | kD), page_entry::kAccessed);
  Outcome write = run(kUser, kUserPage, AccessKind::Write);
  EXPECT_TRUE(write.completed);
  EXPECT_EQ(write.fills, 1u);
  EXPECT_NE(m_tables.get(kUserPage, 1) & kD, 0u);
  EXPECT_NE(shadow_leaf(kUser, kUserPage) & kW, 0u);
  // Dirty already: a read fill maps it writable at once.
  EXPECT_TRUE(run(kKernel, kUserPage, AccessKind::Read).completed);
  EXPECT_NE(shadow_leaf(kKernel, kUserPage) & kW, 0u);
}

TEST_F(ShadowPagerTest, WriteProtectOffLetsTheKernelViewWriteReadOnlyPages) {
  m_tables.map(kUserPage, kUserFrame, kP | kU);
  m_pager->set_paging_controls({.write_protect = false});
  EXPECT_TRUE(run(kKernel, kUserPage, AccessKind::Write).completed);
  expect_reflected(run(kUser, kUserPage, AccessKind::Write), kUserPage,
                   kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  m_pager->set_paging_controls({.write_protect = true});
  expect_reflected(run(kKernel, kUserPage, AccessKind::Write), kUserPage,
                   kPageFaultPresent | kPageFaultWrite);
}

TEST_F(ShadowPagerTest, ExecuteDisableIsReflectedOnFetch) {
  m_pager->set_paging_controls({.write_protect = true, .no_execute = true});
  m_tables.map(kKernelImage, kKernelImageFrame, kP | kW | kXd, 1, kP | kW);
  EXPECT_TRUE(run(kKernel, kKernelImage, AccessKind::Read).completed);
  EXPECT_NE(shadow_leaf(kKernel, kKernelImage) & kXd, 0u);
  expect_reflected(run(kKernel, kKernelImage, AccessKind::Fetch), kKernelImage,
                   kPageFaultPresent | kPageFaultFetch);
  EXPECT_TRUE(run(kKernel, kKernelImage + kPageSize, AccessKind::Fetch).completed);
}

TEST_F(ShadowPagerTest, PageTablePagesAreReadOnlyAndWritesComeBack) {
  // The PT that maps the user pages, seen through the kernel's physical map.
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  const GuestPhysAddr pte = m_tables.entry_address(kUserPage, 1);
  ASSERT_TRUE(m_pager->is_guest_page_table(pte));
  const GuestVirtAddr pte_virtual = kPhysicalMap + pte.value();
  EXPECT_TRUE(run(kKernel, pte_virtual, AccessKind::Read).completed);
  EXPECT_EQ(shadow_leaf(kKernel, pte_virtual) & kW, 0u);
  Outcome write = run(kKernel, pte_virtual, AccessKind::Write);
  EXPECT_EQ(write.resolution.kind, FaultResolution::Kind::PageTableWrite);
  EXPECT_EQ(write.resolution.physical_address, pte);
  EXPECT_EQ(m_pager->counters().page_table_writes, 1u);
  // The guest's root is a page table as well.
  EXPECT_TRUE(m_pager->is_guest_page_table(GuestPhysAddr(m_tables.root())));
  EXPECT_EQ(run(kKernel, kPhysicalMap + m_tables.root() + 8, AccessKind::Write).resolution.kind,
            FaultResolution::Kind::PageTableWrite);
}

TEST_F(ShadowPagerTest, EmulatedPageTableWriteZapsOnlyTheEntryWritten) {
  for (GuestVirtAddr page : {kUserPage, kUserPage + kPageSize}) {
    EXPECT_TRUE(run(kUser, page, AccessKind::Write).completed);
  }
  const GuestPhysAddr pte = m_tables.entry_address(kUserPage, 1);
  constexpr std::uint64_t kNewFrame = 0x680000;
  guest_store(kPhysicalMap + pte.value(), kNewFrame | kP | kW | kU);
  EXPECT_EQ(m_pager->counters().zaps, 1u);
  EXPECT_EQ(shadow_leaf(kUser, kUserPage), 0u);
  EXPECT_NE(shadow_leaf(kUser, kUserPage + kPageSize), 0u);  // its neighbour stays
  EXPECT_TRUE(run(kUser, kUserPage + 8, AccessKind::Read).completed);
  EXPECT_EQ(shadow_walk(kUser, kUserPage + 8).physical_address.value(), kNewFrame + 8);

  // A store the monitor did itself, reported by address.
  ASSERT_TRUE(m_memory.write_object(pte, std::uint64_t{0}).ok());
  m_pager->guest_page_table_written(pte);
  EXPECT_EQ(m_pager->counters().zaps, 2u);
  expect_reflected(run(kUser, kUserPage, AccessKind::Read), kUserPage, kPageFaultUser);
  EXPECT_TRUE(m_pager->take_tlb_flush_request());
  EXPECT_FALSE(m_pager->take_tlb_flush_request());
}

TEST_F(ShadowPagerTest, WritingAnUpperEntryDropsTheSubtree) {
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  EXPECT_TRUE(run(kKernel, kUserPage, AccessKind::Read).completed);
  const std::size_t free_before = m_pager->free_tables();
  const GuestPhysAddr pdpte = m_tables.entry_address(kUserPage, 3);
  // Remove U from the PDPTE: the user view must not keep the page.
  guest_store(kPhysicalMap + pdpte.value(), m_tables.read(pdpte) & ~kU);
  EXPECT_EQ(m_pager->free_tables(), free_before + 4);  // a PD and a PT in each view
  expect_reflected(run(kUser, kUserPage, AccessKind::Read), kUserPage,
                   kPageFaultPresent | kPageFaultUser);
  EXPECT_TRUE(run(kKernel, kUserPage, AccessKind::Read).completed);
}

TEST_F(ShadowPagerTest, FrameBecomingAPageTableIsWriteProtectedEverywhere) {
  // The kernel zeroes a fresh frame through its physical map (writable), then
  // links it as the page table of a new user region (guest/kernel/memory.c).
  constexpr std::uint64_t kFresh = 0x500000;
  constexpr GuestVirtAddr kRegion{0x40000000};
  EXPECT_TRUE(run(kKernel, kPhysicalMap + kFresh, AccessKind::Write).completed);
  EXPECT_NE(shadow_leaf(kKernel, kPhysicalMap + kFresh) & kW, 0u);
  EXPECT_FALSE(m_pager->is_guest_page_table(GuestPhysAddr(kFresh)));

  ASSERT_TRUE(m_memory.write_object(GuestPhysAddr(kFresh), kUserFrame | kP | kW | kU).ok());
  const GuestPhysAddr pde = m_tables.entry_address(kRegion, 2);
  guest_store(kPhysicalMap + pde.value(), kFresh | kP | kW | kU);
  (void)m_pager->take_tlb_flush_request();
  EXPECT_TRUE(run(kUser, kRegion, AccessKind::Read).completed);

  EXPECT_TRUE(m_pager->is_guest_page_table(GuestPhysAddr(kFresh)));
  EXPECT_EQ(m_pager->counters().write_protections, 1u);
  EXPECT_EQ(m_pager->counters().resets, 0u);
  EXPECT_TRUE(m_pager->take_tlb_flush_request());
  EXPECT_EQ(shadow_leaf(kKernel, kPhysicalMap + kFresh) & kW, 0u);
  EXPECT_EQ(run(kKernel, kPhysicalMap + kFresh, AccessKind::Write).resolution.kind,
            FaultResolution::Kind::PageTableWrite);
}

TEST_F(ShadowPagerTest, InvalidatePageDropsBothViews) {
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  EXPECT_TRUE(run(kKernel, kUserPage, AccessKind::Read).completed);
  m_pager->invalidate_page(kUserPage + 0x80);
  EXPECT_EQ(shadow_leaf(kUser, kUserPage), 0u);
  EXPECT_EQ(shadow_leaf(kKernel, kUserPage), 0u);
  EXPECT_EQ(run(kUser, kUserPage, AccessKind::Read).fills, 1u);
  EXPECT_EQ(m_pager->counters().page_invalidations, 1u);
  // invlpg of a monitor address leaves the monitor mapped.
  m_pager->invalidate_page(kMonitorVirtual);
  EXPECT_EQ(shadow_walk(kKernel, kMonitorVirtual).outcome, PageWalk::Outcome::Mapped);
}

TEST_F(ShadowPagerTest, Cr3SwitchKeepsRootsAndStaysCoherent) {
  // A second address space: a user task with its own PML4 sharing the
  // kernel's physical-map PDPT (guest/kernel/task.c).
  GuestPageTables task(m_memory, 0x780000);
  const std::uint64_t slot = table_index(kPhysicalMap, 4);
  task.write(GuestPhysAddr(task.root() + slot * 8),
             m_tables.read(GuestPhysAddr(m_tables.root() + slot * 8)));
  task.map(kUserPage, 0x660000, kP | kW | kU);

  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  const GuestPhysAddr first_root = m_pager->root(kUser);
  m_pager->set_guest_cr3(task.root());
  EXPECT_NE(m_pager->root(kUser), first_root);
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  EXPECT_EQ(shadow_walk(kUser, kUserPage).physical_address.value(), 0x660000u);

  // While the task runs, the kernel edits the first space's user PTE.
  const GuestPhysAddr pte = m_tables.entry_address(kUserPage, 1);
  guest_store(kPhysicalMap + pte.value(), 0x670000 | kP | kW | kU);

  m_pager->set_guest_cr3(m_tables.root() | 0x18);  // PWT/PCD bits do not matter
  EXPECT_EQ(m_pager->root(kUser), first_root);
  EXPECT_EQ(m_pager->counters().cr3_cache_hits, 1u);
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  EXPECT_EQ(shadow_walk(kUser, kUserPage).physical_address.value(), 0x670000u);
  EXPECT_TRUE(run(kUser, kUserPage + kPageSize, AccessKind::Read).completed);
}

TEST_F(ShadowPagerTest, AddressSpaceCacheEvictsTheLeastRecentlyUsed) {
  std::vector<std::uint64_t> roots;
  for (unsigned space = 0; space < 6; ++space) {
    GuestPageTables tables(m_memory, 0x100000 + space * 0x10000);
    tables.map(kUserPage, kUserFrame, kP | kW | kU);
    roots.push_back(tables.root());
    m_pager->set_guest_cr3(tables.root());
    EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  }
  // Four kept (the default), each with 2 roots and a PDPT, PD, PT in the user
  // view; the monitor mapping takes 4 pages.
  EXPECT_EQ(m_pager->table_capacity() - m_pager->free_tables(), 4u + 4u * 5u);
  m_pager->set_guest_cr3(roots[0]);
  EXPECT_EQ(m_pager->counters().cr3_cache_hits, 0u);
  m_pager->set_guest_cr3(roots[5]);
  EXPECT_EQ(m_pager->counters().cr3_cache_hits, 1u);
}

TEST_F(ShadowPagerTest, GuestMappingsOfMonitorFramesAreRefused) {
  constexpr std::array<std::uint64_t, 5> kForbidden = {kMonitorBase, kMonitorBase + kPoolOffset,
                                                       kHole, kMemorySize, 1ULL << 40};
  for (std::uint64_t frame : kForbidden) {
    SCOPED_TRACE(frame);
    m_tables.map(kUserPage, frame, kP | kW | kU);
    m_pager->guest_page_table_written(m_tables.entry_address(kUserPage, 1));
    expect_reflected(run(kKernel, kUserPage, AccessKind::Write), kUserPage, kPageFaultWrite);
    expect_reflected(run(kUser, kUserPage, AccessKind::Read), kUserPage, kPageFaultUser);
    EXPECT_EQ(shadow_leaf(kKernel, kUserPage), 0u);
  }
  // A guest table at the shadow root itself is not followed either.
  const GuestPhysAddr pml4e = m_tables.entry_address(kUserPage, 4);
  m_tables.write(pml4e, m_pager->root(kKernel).value() | kP | kW | kU);
  m_pager->guest_page_table_written(pml4e);
  expect_reflected(run(kKernel, kUserPage, AccessKind::Read), kUserPage, 0);
  expect_reflected(run(kKernel, kMonitorVirtual, AccessKind::Read), kMonitorVirtual, 0);
}

TEST_F(ShadowPagerTest, GuestSlot511IsNeverShadowed) {
  m_tables.map(kMonitorVirtual + 0x1000, kUserFrame, kP | kW | kU);
  const GuestPhysAddr pml4e = m_tables.entry_address(kMonitorVirtual, 4);
  m_pager->guest_page_table_written(pml4e);
  // The monitor's U=0 mapping faults for the guest, which sees an unmapped page.
  expect_reflected(run(kKernel, kMonitorVirtual + 0x1000, AccessKind::Write),
                   kMonitorVirtual + 0x1000, kPageFaultWrite);
  expect_reflected(run(kUser, kMonitorVirtual + 0x1000, AccessKind::Read), kMonitorVirtual + 0x1000,
                   kPageFaultUser);
  expect_reflected(run(kUser, GuestVirtAddr(0xffffffffffff0000ULL), AccessKind::Fetch),
                   GuestVirtAddr(0xffffffffffff0000ULL), kPageFaultUser);
  EXPECT_EQ(shadow_walk(kKernel, kMonitorVirtual + 0x1000).physical_address.value(),
            kMonitorBase + 0x1000);
  // Nor can the emulator reach it through the pager's walker.
  std::array<std::uint8_t, 8> bytes{};
  EXPECT_TRUE(m_pager->walker().read(kMonitorVirtual + 0x1000, bytes, AccessPrivilege::Supervisor));
}

TEST_F(ShadowPagerTest, PoolExhaustionResetsAndRefills) {
  create(16);  // 4 pages map the monitor region, 12 are left
  for (std::uint64_t region = 0; region < 24; ++region) {
    const GuestVirtAddr address(0x40000000 + region * 2 * MiB);
    m_tables.map(address, kUserFrame, kP | kW | kU);
    EXPECT_TRUE(run(kUser, address, AccessKind::Write).completed);
    EXPECT_TRUE(run(kKernel, address, AccessKind::Read).completed);
  }
  EXPECT_GT(m_pager->counters().resets, 0u);
  EXPECT_TRUE(m_pager->take_tlb_flush_request());
  EXPECT_EQ(shadow_walk(kUser, kMonitorVirtual).physical_address.value(), kMonitorBase);
  EXPECT_LE(m_pager->free_tables(), 12u);
}

TEST_F(ShadowPagerTest, ResetKeepsOnlyTheMonitorMapping) {
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
  m_pager->reset();
  // The monitor mapping (4 pages) and the current space's two roots remain.
  EXPECT_EQ(m_pager->table_capacity() - m_pager->free_tables(), 4u + 2u);
  EXPECT_EQ(shadow_leaf(kUser, kUserPage), 0u);
  EXPECT_FALSE(m_pager->is_guest_page_table(m_tables.entry_address(kUserPage, 1)));
  EXPECT_EQ(shadow_walk(kKernel, kMonitorVirtual).outcome, PageWalk::Outcome::Mapped);
  EXPECT_TRUE(run(kUser, kUserPage, AccessKind::Read).completed);
}

TEST_F(ShadowPagerTest, MonitorBugsAreErrorsNotGuestFaults) {
  auto reserved = m_pager->handle_fault(kKernel, kUserPage,
                                        kPageFaultPresent | kPageFaultUser | kPageFaultReservedBit);
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().kind, ShadowPagingError::kReservedBitInShadow);
  auto cpl0 = m_pager->handle_fault(kKernel, kUserPage, kPageFaultWrite);
  ASSERT_FALSE(cpl0.ok());
  EXPECT_EQ(cpl0.error().kind, ShadowPagingError::kMonitorFault);
  EXPECT_NE(cpl0.error().message.find("CPL0"), std::string::npos);
}

TEST(ShadowPagerLayout, RejectsBadLayouts) {
  auto memory = GuestMemory::create(kMemorySize);
  ASSERT_TRUE(memory.ok());
  EXPECT_TRUE(ShadowPager::create(*memory, make_config(64)).ok());
  auto refusal = [&](const ShadowPagerConfig& config) -> std::error_code {
    auto pager = ShadowPager::create(*memory, config);
    return pager.ok() ? std::error_code{} : pager.error().kind;
  };

  auto overlapping = make_config(64);
  overlapping.guest_ram_size = kMonitorBase + MiB;
  EXPECT_EQ(refusal(overlapping), ShadowPagingError::kInvalidLayout);

  auto pool_outside = make_config(64);
  pool_outside.table_pool.base = GuestPhysAddr(kMonitorBase - kPageSize);
  EXPECT_EQ(refusal(pool_outside), ShadowPagingError::kInvalidLayout);

  auto low_virtual = make_config(64);
  low_virtual.monitor_virtual_base = GuestVirtAddr(0xffff800000000000ULL);  // slot 256
  EXPECT_EQ(refusal(low_virtual), ShadowPagingError::kInvalidLayout);

  auto too_small = make_config(8);
  EXPECT_EQ(refusal(too_small), ShadowPagingError::kPoolTooSmall);

  // Writing the monitor mapping into memory that is not there.
  auto beyond_memory = make_config(64);
  beyond_memory.monitor = {GuestPhysAddr(kMemorySize), kMonitorSize};
  beyond_memory.table_pool = {GuestPhysAddr(kMemorySize), 64 * kPageSize};
  EXPECT_EQ(refusal(beyond_memory), ShadowPagingError::kTableAccessFailed);
}

// ---- Fuzz ---------------------------------------------------------------------

// Random guest page tables, CR3 values, accesses, invlpg, resets and page-table
// writes. After every step each shadow table reachable from the two roots must
// reference only the pool (tables) and guest RAM (leaves), except the monitor
// mapping, and every shadow leaf must grant no more than the guest's tables do.
class ShadowPagerFuzz : public ShadowPagerTest {
 protected:
  static constexpr std::array<unsigned, 4> kIndices = {0, 1, 2, 511};
  static constexpr unsigned kTableFrames = 12;
  static constexpr std::uint64_t kFuzzTables = 0x100000;
  static constexpr std::uint64_t kFuzzData = 0x200000;

  std::uint64_t pick(std::uint64_t bound) { return m_random() % bound; }
  std::uint64_t table_frame() { return kFuzzTables + pick(kTableFrames) * kPageSize; }

  GuestVirtAddr random_address() {
    std::uint64_t address = 0;
    for (unsigned level = 4; level >= 1; --level) {
      address |= std::uint64_t{kIndices[pick(4)]} << (12 + 9 * (level - 1));
    }
    if ((address >> 47) != 0) address |= 0xffff000000000000ULL;  // canonical
    return GuestVirtAddr(address | (pick(kPageSize) & ~7ULL));
  }

  // Mostly usable entries: a walk through four of them often succeeds.
  std::uint64_t likely_flags() {
    std::uint64_t flags = kP | page_entry::kAccessed;
    if (pick(5) != 0) flags |= kW;
    if (pick(5) != 0) flags |= kU;
    if (pick(20) == 0) flags |= kXd;
    if (pick(3) == 0) flags |= kD;
    return flags;
  }

  // Every table frame's used slots point at table frames, which therefore
  // also serve as pages: leaves often map a page table, as a kernel's
  // physical map does.
  std::uint64_t random_entry() {
    const std::uint64_t choice = pick(24);
    if (choice == 0) return 0;
    if (choice <= 15) return table_frame() | likely_flags();
    if (choice <= 18) return (kFuzzData + pick(16) * kPageSize) | likely_flags();
    if (choice == 19) {  // a large page: 2 MiB aligned in RAM, or 1 GiB at 0
      return pick(4) * 2 * MiB | page_entry::kLargePage | likely_flags();
    }
    if (choice == 20) {
      constexpr std::array<std::uint64_t, 5> kForbidden = {kMonitorBase, kMonitorBase + kPoolOffset,
                                                           kHole, kMemorySize, 1ULL << 40};
      return kForbidden[pick(kForbidden.size())] | likely_flags();
    }
    if (choice == 21) return m_random();
    if (choice == 22) return table_frame() | (likely_flags() & ~kP);
    return table_frame() | likely_flags() | (1ULL << (13 + pick(8)));  // reserved in large pages
  }

  // A table frame filled anew: cleared, then its used slots pointing at
  // table frames.
  void rebuild_table(GuestPhysAddr frame) {
    ASSERT_TRUE(m_memory.fill(frame, 0, kPageSize).ok());
    for (unsigned index : kIndices) {
      ASSERT_TRUE(m_memory.write_object(frame + index * 8, table_frame() | likely_flags()).ok());
    }
  }

  void populate() {
    ASSERT_TRUE(m_memory.fill(GuestPhysAddr(0), 0, kRamSize).ok());
    for (unsigned frame = 0; frame < kTableFrames; ++frame) {
      rebuild_table(GuestPhysAddr(kFuzzTables + frame * kPageSize));
    }
  }

  void random_table_write() {
    const GuestPhysAddr entry(table_frame() + kIndices[pick(4)] * 8);
    ASSERT_TRUE(m_memory.write_object(entry, random_entry()).ok());
    m_pager->guest_page_table_written(entry);
  }

  void random_access() {
    const ShadowView view = pick(2) != 0 ? kKernel : kUser;
    const GuestVirtAddr address = random_address();
    const auto access = static_cast<AccessKind>(pick(3));
    const Outcome outcome = run(view, address, access);
    if (outcome.completed) {
      ++m_completed;
      return;
    }
    const auto privilege = view == kKernel ? AccessPrivilege::Supervisor : AccessPrivilege::User;
    PageWalker& guest = m_pager->walker();
    switch (outcome.resolution.kind) {
      case FaultResolution::Kind::Filled:
        ADD_FAILURE() << "filled but still faulting at " << std::hex << address.value();
        break;
      case FaultResolution::Kind::ReflectToGuest: {
        auto fault = guest.check(guest.walk(address), access, privilege);
        ASSERT_TRUE(fault.has_value()) << std::hex << address.value();
        EXPECT_EQ(fault->error_code, outcome.resolution.guest_error_code);
        EXPECT_EQ(outcome.resolution.address, address);
        break;
      }
      case FaultResolution::Kind::PageTableWrite:
        EXPECT_EQ(access, AccessKind::Write);
        EXPECT_TRUE(m_pager->is_guest_page_table(outcome.resolution.physical_address));
        // Emulate it: a new entry value, written through the walker.
        guest_store(address, random_entry(), privilege);
        break;
      case FaultResolution::Kind::CodeWrite:
      case FaultResolution::Kind::KernelFetch:
        ADD_FAILURE() << "a bt resolution without a translation cache";
        break;
    }
  }

  void random_data_write() {
    std::array<std::uint8_t, 16> bytes{};
    for (auto& byte : bytes)
      byte = static_cast<std::uint8_t>(m_random());
    (void)m_pager->walker().write(random_address(), bytes, AccessPrivilege::Supervisor);
  }

  void step() {
    const std::uint64_t choice = pick(1000);
    if (choice < 450) {
      random_access();
    } else if (choice < 650) {
      random_table_write();
    } else if (choice < 660) {
      const GuestPhysAddr frame(table_frame());
      rebuild_table(frame);
      m_pager->guest_page_table_written(frame, kPageSize);
    } else if (choice < 760) {
      m_pager->set_guest_cr3(pick(16) == 0 ? kMonitorBase + kPoolOffset : table_frame());
    } else if (choice < 840) {
      m_pager->invalidate_page(random_address());
    } else if (choice < 845) {
      m_pager->set_paging_controls({.write_protect = pick(2) != 0, .no_execute = pick(2) != 0});
    } else if (choice < 847) {
      m_pager->reset();
    } else {
      random_data_write();
    }
  }

  void check_table(ShadowView view, GuestPhysAddr table, unsigned level, std::uint64_t prefix) {
    const PhysicalRange pool = m_pager->config().table_pool;
    for (unsigned index = 0; index < kPageTableEntries; ++index) {
      auto value = m_memory.read_object<std::uint64_t>(table + index * 8);
      ASSERT_TRUE(value.ok());
      if ((*value & kP) == 0) continue;
      std::uint64_t address = prefix | std::uint64_t{index} << (12 + 9 * (level - 1));
      if ((address >> 47) != 0) address |= 0xffff000000000000ULL;
      const GuestPhysAddr target(*value & page_entry::kAddressMask);
      if (level == 4 && index == 511) {
        EXPECT_EQ(*value & kU, 0u) << "the monitor slot must be supervisor-only";
        continue;
      }
      if (level > 1) {
        ASSERT_EQ(*value & page_entry::kLargePage, 0u) << "PS set in the shadow";
        ASSERT_TRUE(pool.contains(target, kPageSize))
            << "shadow table outside the pool: " << std::hex << target.value();
        check_table(view, target, level - 1, address);
        continue;
      }
      ASSERT_LT(target.value(), kRamSize)
          << "shadow leaf outside guest RAM at " << std::hex << address << ": " << *value;
      check_leaf(view, GuestVirtAddr(address), *value);
    }
  }

  // The shadow grants nothing the guest's tables do not.
  void check_leaf(ShadowView view, GuestVirtAddr address, std::uint64_t leaf) {
    PageWalker& guest = m_pager->walker();
    const auto privilege = view == kKernel ? AccessPrivilege::Supervisor : AccessPrivilege::User;
    const PageWalk walk = guest.walk(address);
    ASSERT_FALSE(guest.check(walk, AccessKind::Read, privilege))
        << "shadow maps " << std::hex << address.value() << " the guest does not";
    EXPECT_EQ(walk.frame().value(), leaf & page_entry::kAddressMask);
    EXPECT_NE(leaf & kU, 0u);
    if ((leaf & kW) != 0) {
      EXPECT_FALSE(guest.check(walk, AccessKind::Write, privilege)) << std::hex << address.value();
      EXPECT_FALSE(m_pager->is_guest_page_table(walk.frame()))
          << "page table " << std::hex << walk.frame().value() << " writable at "
          << address.value();
      EXPECT_NE(walk.entries[walk.level] & kD, 0u) << "writable before dirty";
    }
    if ((leaf & kXd) == 0) {
      EXPECT_FALSE(guest.check(walk, AccessKind::Fetch, privilege));
    } else {
      EXPECT_TRUE(guest.controls().no_execute) << "XD without NXE";
    }
  }

  void check_invariants() {
    for (ShadowView view : {kKernel, kUser}) {
      check_table(view, m_pager->root(view), 4, 0);
      const PageWalk monitor = shadow_walk(view, kMonitorVirtual + 0x2000);
      ASSERT_EQ(monitor.physical_address.value(), kMonitorBase + 0x2000);
      ASSERT_FALSE(monitor.user);
    }
  }

  void fuzz(std::uint64_t seed, std::uint64_t pool_pages, unsigned steps) {
    m_random.seed(seed);
    m_completed = 0;
    populate();
    create(pool_pages);
    m_pager->set_guest_cr3(table_frame());
    for (unsigned index = 0; index < steps; ++index) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " step " + std::to_string(index));
      step();
      if (::testing::Test::HasFatalFailure()) return;
      check_invariants();
      if (::testing::Test::HasFailure()) return;
    }
    // The run reached every path, not only reflections.
    const ShadowPagerCounters& counters = m_pager->counters();
    EXPECT_GT(m_completed, steps / 40);
    EXPECT_GT(counters.fills, steps / 40);
    EXPECT_GT(counters.reflections, 0u);
    EXPECT_GT(counters.page_table_writes, 0u);
    EXPECT_GT(counters.zaps, 0u);
    EXPECT_GT(counters.write_protections, 0u);
    EXPECT_GT(counters.cr3_cache_hits, 0u);
  }

  std::uint64_t m_completed = 0;

  std::mt19937_64 m_random;
};

TEST_F(ShadowPagerFuzz, SmallPool) {
  for (std::uint64_t seed = 1; seed <= 6; ++seed)
    fuzz(seed, 20, 5000);
}

TEST_F(ShadowPagerFuzz, LargePool) {
  for (std::uint64_t seed = 100; seed <= 105; ++seed)
    fuzz(seed, kLargePool, 5000);
}

}  // namespace
}  // namespace vmlab::full
