#include "vmlab/monitor/page_walker.hpp"

#include <gtest/gtest.h>

#include <array>
#include <vector>

#include "guest_page_tables.hpp"

namespace vmlab::monitor {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace)
using Fault = GuestVirtualMemory::Fault;

constexpr std::uint64_t kRamSize = 8 * MiB;
constexpr std::uint64_t kMemorySize = 16 * MiB;  // RAM, then what the guest must not reach
constexpr std::uint64_t kOutsideRam = 12 * MiB;  // e.g. the monitor region
constexpr GuestVirtAddr kUserPage{0x400000};
constexpr std::uint64_t kDataFrame = 0x200000;

class PageWalkerTest : public ::testing::Test {
 protected:
  PageWalkerTest()
      : m_memory(std::move(*GuestMemory::create(kMemorySize))),
        m_tables(m_memory, 0x100000),
        m_walker(m_memory, kRamSize) {
    m_walker.set_root(m_tables.root());
  }

  // The translation, or the fault as {address, error code}.
  std::variant<GuestPhysAddr, Fault> translate(GuestVirtAddr address, AccessKind access,
                                               AccessPrivilege privilege) {
    return m_walker.translate(address, access, privilege);
  }
  static std::uint32_t error_of(const std::variant<GuestPhysAddr, Fault>& result) {
    const auto* fault = std::get_if<Fault>(&result);
    EXPECT_NE(fault, nullptr);
    return fault != nullptr ? fault->error_code : 0xffffffffu;
  }
  static std::uint64_t address_of(const std::variant<GuestPhysAddr, Fault>& result) {
    const auto* address = std::get_if<GuestPhysAddr>(&result);
    EXPECT_NE(address, nullptr) << "fault, error code " << std::hex
                                << std::get<Fault>(result).error_code;
    return address != nullptr ? address->value() : ~0ULL;
  }

  GuestMemory m_memory;
  GuestPageTables m_tables;
  PageWalker m_walker;
};

TEST_F(PageWalkerTest, TranslatesFourKibPagesForEveryAccess) {
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  for (AccessKind access : {AccessKind::Read, AccessKind::Write, AccessKind::Fetch}) {
    for (AccessPrivilege privilege : {AccessPrivilege::User, AccessPrivilege::Supervisor}) {
      EXPECT_EQ(address_of(translate(kUserPage + 0x123, access, privilege)), kDataFrame + 0x123);
    }
  }
}

TEST_F(PageWalkerTest, NotPresentAtEachLevelFaultsWithPresentClear) {
  for (unsigned level = 4; level >= 1; --level) {
    SCOPED_TRACE(level);
    m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
    const GuestPhysAddr entry = m_tables.entry_address(kUserPage, level);
    m_tables.write(entry, m_tables.read(entry) & ~kP);
    auto result = translate(kUserPage + 8, AccessKind::Write, AccessPrivilege::User);
    EXPECT_EQ(error_of(result), kPageFaultWrite | kPageFaultUser);
    EXPECT_EQ(std::get<Fault>(result).address, kUserPage + 8);
    EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::Supervisor)), 0u);
    // Without EFER.NXE the I/D bit is not reported (SDM 4.7).
    EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Fetch, AccessPrivilege::Supervisor)), 0u);
    m_walker.set_controls({.write_protect = true, .no_execute = true});
    EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Fetch, AccessPrivilege::User)),
              kPageFaultFetch | kPageFaultUser);
    m_walker.set_controls({});
    m_tables.write(entry, m_tables.read(entry) | kP);
  }
}

TEST_F(PageWalkerTest, WritesToReadOnlyPagesFaultUnlessWriteProtectIsOff) {
  m_tables.map(kUserPage, kDataFrame, kP | kU);  // R/W clear in the leaf
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::Supervisor)),
            kPageFaultPresent | kPageFaultWrite);
  EXPECT_EQ(address_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)), kDataFrame);

  // CR0.WP=0: supervisor writes ignore R/W, user writes do not (SDM 4.6.1).
  m_walker.set_controls({.write_protect = false});
  EXPECT_EQ(address_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::Supervisor)),
            kDataFrame);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
}

TEST_F(PageWalkerTest, ReadOnlyAtAnUpperLevelMakesThePageReadOnly) {
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  const GuestPhysAddr pdpte = m_tables.entry_address(kUserPage, 3);
  m_tables.write(pdpte, m_tables.read(pdpte) & ~kW);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
}

TEST_F(PageWalkerTest, UserAccessToSupervisorPageFaults) {
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  const GuestPhysAddr pde = m_tables.entry_address(kUserPage, 2);
  m_tables.write(pde, m_tables.read(pde) & ~kU);  // U/S clear in one level is enough
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultUser);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  EXPECT_EQ(address_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::Supervisor)),
            kDataFrame);
}

TEST_F(PageWalkerTest, ExecuteDisableFaultsFetchesOnlyWithNxe) {
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  const GuestPhysAddr pml4e = m_tables.entry_address(kUserPage, 4);
  m_tables.write(pml4e, m_tables.read(pml4e) | kXd);

  m_walker.set_controls({.write_protect = true, .no_execute = true});
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Fetch, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultUser | kPageFaultFetch);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Fetch, AccessPrivilege::Supervisor)),
            kPageFaultPresent | kPageFaultFetch);
  EXPECT_EQ(address_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)), kDataFrame);

  // Without EFER.NXE bit 63 is reserved (SDM 4.5, table 4-15).
  m_walker.set_controls({.write_protect = true, .no_execute = false});
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultUser | kPageFaultReservedBit);
}

TEST_F(PageWalkerTest, ReservedBitsFaultWithRsvd) {
  constexpr std::uint32_t kReserved = kPageFaultPresent | kPageFaultReservedBit;
  // PS in a PML4E is reserved.
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  const GuestPhysAddr pml4e = m_tables.entry_address(kUserPage, 4);
  m_tables.write(pml4e, m_tables.read(pml4e) | page_entry::kLargePage);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::Supervisor)),
            kReserved);
  m_tables.write(pml4e, m_tables.read(pml4e) & ~page_entry::kLargePage);

  // Bits 20:13 of a 2 MiB page entry, 29:13 of a 1 GiB one.
  constexpr GuestVirtAddr kLarge{0x40000000};
  m_tables.map(kLarge, 0x200000 | (1ULL << 13), kP | kW, 2);
  EXPECT_EQ(error_of(translate(kLarge, AccessKind::Read, AccessPrivilege::Supervisor)), kReserved);
  constexpr GuestVirtAddr kHuge{0x80000000};
  m_tables.map(kHuge, 1ULL << 20, kP | kW, 3);
  EXPECT_EQ(error_of(translate(kHuge, AccessKind::Write, AccessPrivilege::User)),
            kReserved | kPageFaultWrite | kPageFaultUser);

  // Bits 51:MAXPHYADDR.
  m_tables.map(kUserPage, kDataFrame | (1ULL << 40), kP | kW | kU);
  m_walker.set_controls({.physical_address_bits = 36});
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kReserved | kPageFaultUser);
  // With MAXPHYADDR 52 it is an address, and outside RAM: not present for the guest.
  m_walker.set_controls({.physical_address_bits = 52});
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultUser);
}

TEST_F(PageWalkerTest, TranslatesLargePages) {
  constexpr GuestVirtAddr kLarge{0x40000000};
  m_tables.map(kLarge, 0x400000, kP | kW, 2);
  EXPECT_EQ(address_of(translate(kLarge + 0x12345, AccessKind::Read, AccessPrivilege::Supervisor)),
            0x412345u);
  const PageWalk walk = m_walker.walk(kLarge + 0x12345);
  EXPECT_EQ(walk.level, 2u);
  EXPECT_EQ(walk.page_size(), 2 * MiB);
  EXPECT_EQ(walk.frame().value(), 0x412000u);

  constexpr GuestVirtAddr kHuge{0x80000000};  // a 1 GiB page over RAM at 0
  m_tables.map(kHuge, 0, kP | kW | kU, 3);
  EXPECT_EQ(address_of(translate(kHuge + 0x5678, AccessKind::Write, AccessPrivilege::User)),
            0x5678u);
  EXPECT_EQ(m_walker.walk(kHuge).level, 3u);
  // The part of the 1 GiB page beyond RAM is not there for the guest.
  EXPECT_EQ(error_of(translate(kHuge + kRamSize, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultUser);
}

TEST_F(PageWalkerTest, SetsAccessedAndDirtyLikeHardware) {
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  auto level_entry = [&](unsigned level) { return m_tables.get(kUserPage, level); };
  for (unsigned level = 4; level >= 1; --level)
    EXPECT_EQ(level_entry(level) & (kA | kD), 0u);

  (void)address_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User));
  for (unsigned level = 4; level >= 1; --level) {
    EXPECT_EQ(level_entry(level) & (kA | kD), kA) << "level " << level;
  }
  (void)address_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::User));
  EXPECT_EQ(level_entry(1) & (kA | kD), kA | kD);
  EXPECT_EQ(level_entry(2) & kD, 0u);  // D only in the leaf (SDM 4.8)

  // A 2 MiB page: D in the PDE that maps it.
  constexpr GuestVirtAddr kLarge{0x40000000};
  m_tables.map(kLarge, 0x400000, kP | kW, 2);
  std::array<std::uint8_t, 4> bytes{1, 2, 3, 4};
  EXPECT_FALSE(m_walker.write(kLarge + 0x100, bytes, AccessPrivilege::Supervisor));
  EXPECT_EQ(m_tables.get(kLarge, 2) & (kA | kD), kA | kD);
}

TEST_F(PageWalkerTest, FaultingAccessChangesNothing) {
  m_tables.map(kUserPage, kDataFrame, kP | kU);
  std::array<std::uint8_t, 8> bytes{};
  bytes.fill(0xab);
  auto fault = m_walker.write(kUserPage, bytes, AccessPrivilege::User);
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->error_code, kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  for (unsigned level = 4; level >= 1; --level)
    EXPECT_EQ(m_tables.get(kUserPage, level) & kA, 0u);
  EXPECT_EQ(m_tables.read(GuestPhysAddr(kDataFrame)), 0u);
}

TEST_F(PageWalkerTest, AccessesCrossPageBoundaries) {
  constexpr std::uint64_t kSecondFrame = 0x300000;
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  m_tables.map(kUserPage + kPageSize, kSecondFrame, kP | kW | kU);
  std::array<std::uint8_t, 16> in{};
  for (unsigned index = 0; index < in.size(); ++index)
    in[index] = static_cast<std::uint8_t>(index);
  EXPECT_FALSE(m_walker.write(kUserPage + (kPageSize - 8), in, AccessPrivilege::User));
  EXPECT_EQ(m_tables.read(GuestPhysAddr(kDataFrame + kPageSize - 8)), 0x0706050403020100u);
  EXPECT_EQ(m_tables.read(GuestPhysAddr(kSecondFrame)), 0x0f0e0d0c0b0a0908u);
  std::array<std::uint8_t, 16> out{};
  EXPECT_FALSE(m_walker.read(kUserPage + (kPageSize - 8), out, AccessPrivilege::User));
  EXPECT_EQ(out, in);

  // The second page faulting: CR2 is its first byte, the first page is untouched.
  m_tables.set(kUserPage + kPageSize, 1, 0);
  const std::uint64_t first_pte = m_tables.get(kUserPage, 1) & ~(kA | kD);
  m_tables.set(kUserPage, 1, first_pte);
  in.fill(0xee);
  auto fault = m_walker.write(kUserPage + (kPageSize - 8), in, AccessPrivilege::User);
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->address, kUserPage + kPageSize);
  EXPECT_EQ(fault->error_code, kPageFaultWrite | kPageFaultUser);
  EXPECT_EQ(m_tables.read(GuestPhysAddr(kDataFrame + kPageSize - 8)), 0x0706050403020100u);
  EXPECT_EQ(m_tables.get(kUserPage, 1), first_pte);
}

TEST_F(PageWalkerTest, FramesOutsideRamAreNotPresentForTheGuest) {
  // A page at the monitor region: P=0, with the access's W and U bits.
  m_tables.map(kUserPage, kOutsideRam, kP | kW | kU);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Write, AccessPrivilege::User)),
            kPageFaultWrite | kPageFaultUser);
  std::array<std::uint8_t, 8> bytes{};
  EXPECT_TRUE(m_walker.read(kUserPage, bytes, AccessPrivilege::Supervisor));
  // Rights are checked first: a supervisor page there still gives P=1, U=1.
  m_tables.map(kUserPage, kOutsideRam, kP | kW);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultPresent | kPageFaultUser);

  // A paging structure outside RAM is never read.
  const GuestPhysAddr pde = m_tables.entry_address(kUserPage, 2);
  m_tables.write(pde, kOutsideRam | kTableFlags);
  ASSERT_TRUE(m_memory
                  .write_object(GuestPhysAddr(kOutsideRam + table_index(kUserPage, 1) * 8),
                                kDataFrame | kP | kW | kU)
                  .ok());
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultUser);

  // Nor is a root outside RAM, or past the end of guest memory.
  m_walker.set_root(kOutsideRam);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::Supervisor)), 0u);
  m_walker.set_root(0x000ffffffffff000ULL);
  EXPECT_EQ(error_of(translate(kUserPage, AccessKind::Read, AccessPrivilege::Supervisor)), 0u);
}

TEST_F(PageWalkerTest, HiddenSlotIsNotPresent) {
  constexpr GuestVirtAddr kHigh{0xffffff8000001000ULL};  // PML4 slot 511
  m_tables.map(kHigh, kDataFrame, kP | kW);
  EXPECT_EQ(address_of(translate(kHigh, AccessKind::Read, AccessPrivilege::Supervisor)),
            kDataFrame);
  PageWalker hiding(m_memory, kRamSize, PageWalkerOptions{.hidden_pml4_slot = 511});
  hiding.set_root(m_tables.root());
  auto result = hiding.translate(kHigh, AccessKind::Write, AccessPrivilege::Supervisor);
  EXPECT_EQ(error_of(result), kPageFaultWrite);
}

TEST_F(PageWalkerTest, DeviceWindowsTranslateButTablesThereDoNot) {
  const PhysicalRange window{GuestPhysAddr(kOutsideRam), 64 * KiB};
  PageWalker walker(m_memory, kRamSize, PageWalkerOptions{.device_windows = {window}});
  walker.set_root(m_tables.root());
  m_tables.map(kUserPage, kOutsideRam + 0x1000, kP | kW | kU);
  auto result = walker.translate(kUserPage + 4, AccessKind::Write, AccessPrivilege::User);
  EXPECT_EQ(address_of(result), kOutsideRam + 0x1004);
  const GuestPhysAddr pde = m_tables.entry_address(kUserPage, 2);
  m_tables.write(pde, kOutsideRam | kTableFlags);
  EXPECT_EQ(error_of(walker.translate(kUserPage, AccessKind::Read, AccessPrivilege::User)),
            kPageFaultUser);
}

TEST_F(PageWalkerTest, WriteObserverSeesEveryPhysicalPiece) {
  constexpr std::uint64_t kSecondFrame = 0x300000;
  m_tables.map(kUserPage, kDataFrame, kP | kW | kU);
  m_tables.map(kUserPage + kPageSize, kSecondFrame, kP | kW | kU);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  m_walker.set_write_observer([&](GuestPhysAddr address, std::uint64_t length) {
    seen.emplace_back(address.value(), length);
  });
  std::array<std::uint8_t, 12> bytes{};
  EXPECT_FALSE(m_walker.write(kUserPage + (kPageSize - 4), bytes, AccessPrivilege::User));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(kDataFrame + kPageSize - 4, std::uint64_t{4}));
  EXPECT_EQ(seen[1], std::make_pair(kSecondFrame, std::uint64_t{8}));
  // Reads and the accessed/dirty updates are not reported.
  seen.clear();
  EXPECT_FALSE(m_walker.read(kUserPage, bytes, AccessPrivilege::User));
  EXPECT_TRUE(seen.empty());
}

TEST_F(PageWalkerTest, ZeroLengthAccessNeverFaults) {
  EXPECT_FALSE(
      m_walker.read(GuestVirtAddr(0xdead000), std::span<std::uint8_t>(), AccessPrivilege::User));
}

TEST(PagingControls, FollowTheVirtualCpu) {
  VirtualCpu cpu;
  cpu.cr0 = 0x80000011;  // WP clear
  cpu.efer = 0xd01;      // NXE set
  const auto controls = PagingControls::from(cpu);
  EXPECT_FALSE(controls.write_protect);
  EXPECT_TRUE(controls.no_execute);
  EXPECT_TRUE(PagingControls::from(VirtualCpu{}).write_protect);
  EXPECT_FALSE(PagingControls::from(VirtualCpu{}).no_execute);
}

}  // namespace
}  // namespace vmlab::monitor
