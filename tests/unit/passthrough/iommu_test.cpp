#include <vmlab/devices/iommu.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

#include "vector_memory.hpp"

namespace vmlab::devices {
namespace {

constexpr std::uint64_t kMemorySize = 1 * MiB;
constexpr IommuAccess kReadWrite{true, true};
constexpr IommuAccess kReadOnly{true, false};

// Why a change to the table was refused, or no kind if it was made.
std::error_code error_kind(const Status& status) {
  return status ? std::error_code{} : status.error().kind;
}

TEST(Iommu, MapTranslateUnmap) {
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x100000000, GuestPhysAddr(0x3000), 2 * kPageSize, kReadWrite));
  EXPECT_EQ(iommu.mapped_pages(), 2u);

  const DmaTranslation translation = iommu.translate(0x100000010, 0x20, DmaDirection::Read);
  ASSERT_TRUE(translation);
  ASSERT_EQ(translation.pieces().size(), 1u);
  EXPECT_EQ(translation.pieces()[0].address, GuestPhysAddr(0x3010));
  EXPECT_EQ(translation.pieces()[0].length, 0x20u);

  ASSERT_TRUE(iommu.unmap(0x100000000, 2 * kPageSize));
  EXPECT_EQ(iommu.mapped_pages(), 0u);
  EXPECT_FALSE(iommu.translate(0x100000010, 0x20, DmaDirection::Read));
}

TEST(Iommu, RefusesOverlapsMisalignmentAndTargetsOutsideMemory) {
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x10000, GuestPhysAddr(0), 4 * kPageSize, kReadWrite));
  // Overlaps the last page: refused, and nothing of it is mapped.
  EXPECT_EQ(error_kind(iommu.map(0x13000, GuestPhysAddr(0x20000), 2 * kPageSize, kReadWrite)),
            IommuError::kAlreadyMapped);
  EXPECT_EQ(iommu.mapped_pages(), 4u);
  EXPECT_FALSE(iommu.translate(0x14000, 1, DmaDirection::Read));

  const auto map = [&iommu](std::uint64_t iova, std::uint64_t guest_physical, std::uint64_t length,
                            IommuAccess access = kReadWrite) {
    return error_kind(iommu.map(iova, GuestPhysAddr(guest_physical), length, access));
  };
  EXPECT_EQ(map(0x20001, 0, kPageSize), IommuError::kBadRange);
  EXPECT_EQ(map(0x20000, 1, kPageSize), IommuError::kBadRange);
  EXPECT_EQ(map(0x20000, 0, 100), IommuError::kBadRange);
  EXPECT_EQ(map(0x20000, 0, 0), IommuError::kBadRange);
  EXPECT_EQ(map(0x20000, kMemorySize, kPageSize), IommuError::kOutsideGuestMemory);
  EXPECT_EQ(map(0x20000, kMemorySize - kPageSize, 2 * kPageSize), IommuError::kOutsideGuestMemory);
  EXPECT_EQ(map(0x20000, 0, 2 * kMemorySize), IommuError::kOutsideGuestMemory);
  EXPECT_EQ(map(~std::uint64_t{0} - kPageSize + 1, 0, 2 * kPageSize), IommuError::kBadRange);
  EXPECT_EQ(map(0x20000, 0, kPageSize, IommuAccess{false, false}), IommuError::kNoAccess);
  EXPECT_EQ(iommu.mapped_pages(), 4u);

  // The last page of memory is fine.
  EXPECT_TRUE(iommu.map(0x20000, GuestPhysAddr(kMemorySize - kPageSize), kPageSize, kReadWrite));
}

TEST(Iommu, UnmapRequiresAMappedRangeAndChangesNothingOtherwise) {
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x10000, GuestPhysAddr(0), 2 * kPageSize, kReadWrite));
  EXPECT_EQ(error_kind(iommu.unmap(0x10000, 3 * kPageSize)), IommuError::kNotMapped);
  EXPECT_EQ(error_kind(iommu.unmap(0x10001, kPageSize)), IommuError::kBadRange);
  EXPECT_EQ(iommu.mapped_pages(), 2u);
  ASSERT_TRUE(iommu.unmap(0x11000, kPageSize));
  EXPECT_TRUE(iommu.translate(0x10000, kPageSize, DmaDirection::Read));
  EXPECT_FALSE(iommu.translate(0x10000, kPageSize + 1, DmaDirection::Read));
}

TEST(Iommu, TranslatesAcrossPagesMappedToNonContiguousGuestPages) {
  Iommu iommu(kMemorySize);
  // Three consecutive I/O pages: the first two land apart, the third right
  // after the second.
  ASSERT_TRUE(iommu.map(0x40000, GuestPhysAddr(0x9000), kPageSize, kReadWrite));
  ASSERT_TRUE(iommu.map(0x41000, GuestPhysAddr(0x2000), kPageSize, kReadWrite));
  ASSERT_TRUE(iommu.map(0x42000, GuestPhysAddr(0x3000), kPageSize, kReadWrite));

  const DmaTranslation translation = iommu.translate(0x40f00, 0x1200, DmaDirection::Write);
  ASSERT_TRUE(translation);
  ASSERT_EQ(translation.pieces().size(), 2u);
  EXPECT_EQ(translation.pieces()[0].address, GuestPhysAddr(0x9f00));
  EXPECT_EQ(translation.pieces()[0].length, 0x100u);
  EXPECT_EQ(translation.pieces()[1].address, GuestPhysAddr(0x2000));
  EXPECT_EQ(translation.pieces()[1].length, 0x1100u);
  EXPECT_EQ(iommu.fault_count(), 0u);
}

TEST(Iommu, WriteToReadOnlyPageIsBlockedAtItsFirstByte) {
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x10000, GuestPhysAddr(0), kPageSize, kReadWrite));
  ASSERT_TRUE(iommu.map(0x11000, GuestPhysAddr(0x5000), kPageSize, kReadOnly));

  EXPECT_TRUE(iommu.translate(0x10800, 0x1000, DmaDirection::Read));
  const DmaTranslation blocked = iommu.translate(0x10800, 0x1000, DmaDirection::Write);
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.fault().iova, 0x11000u);
  EXPECT_EQ(blocked.fault().kind, IommuFaultKind::ReadOnly);
  EXPECT_EQ(blocked.fault().direction, DmaDirection::Write);
  EXPECT_TRUE(blocked.pieces().empty());
  EXPECT_EQ(iommu.fault_count(), 1u);
}

TEST(Iommu, UnmappedPageIsBlockedAndRecorded) {
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x10000, GuestPhysAddr(0), kPageSize, kReadWrite));
  ASSERT_TRUE(iommu.map(0x12000, GuestPhysAddr(0x1000), kPageSize, kReadWrite));

  const DmaTranslation blocked = iommu.translate(0x10ff0, 0x1020, DmaDirection::Read);
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.fault().iova, 0x11000u);
  EXPECT_EQ(blocked.fault().kind, IommuFaultKind::NotMapped);
  ASSERT_EQ(iommu.recent_faults().size(), 1u);
  EXPECT_EQ(iommu.recent_faults()[0].iova, 0x11000u);

  // A DMA running off the top of the I/O address space is blocked too.
  EXPECT_FALSE(iommu.translate(~std::uint64_t{0} - 8, 64, DmaDirection::Read));
  EXPECT_EQ(iommu.fault_count(), 2u);
}

TEST(Iommu, FaultRecordIsBoundedButTheCounterIsNot) {
  Iommu iommu(kMemorySize);
  const std::uint64_t total = Iommu::kRecentFaultLimit + 10;
  for (std::uint64_t index = 0; index < total; ++index) {
    EXPECT_FALSE(iommu.translate(index * kPageSize, 1, DmaDirection::Read));
  }
  EXPECT_EQ(iommu.fault_count(), total);
  const auto faults = iommu.recent_faults();
  ASSERT_EQ(faults.size(), Iommu::kRecentFaultLimit);
  EXPECT_EQ(faults.front().iova, 10 * kPageSize);  // the oldest ten were dropped
  EXPECT_EQ(faults.back().iova, (total - 1) * kPageSize);

  EXPECT_EQ(iommu.take_recent_faults().size(), Iommu::kRecentFaultLimit);
  EXPECT_TRUE(iommu.recent_faults().empty());
  EXPECT_EQ(iommu.fault_count(), total);
}

TEST(Iommu, BypassModeIsIdentityInsideMemoryAndBlocksOutside) {
  Iommu iommu(kMemorySize);
  iommu.set_enabled(false);
  EXPECT_FALSE(iommu.enabled());

  const DmaTranslation whole = iommu.translate(0, kMemorySize, DmaDirection::Write);
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole.pieces().size(), 1u);
  EXPECT_EQ(whole.pieces()[0].address, GuestPhysAddr(0));
  EXPECT_EQ(whole.pieces()[0].length, kMemorySize);

  const DmaTranslation straddling = iommu.translate(kMemorySize - 16, 32, DmaDirection::Write);
  ASSERT_FALSE(straddling);
  EXPECT_EQ(straddling.fault().iova, kMemorySize);
  EXPECT_EQ(straddling.fault().kind, IommuFaultKind::NotMapped);
  EXPECT_FALSE(iommu.translate(kMemorySize, 1, DmaDirection::Read));
  EXPECT_FALSE(iommu.translate(~std::uint64_t{0}, 2, DmaDirection::Read));
  EXPECT_FALSE(iommu.translate(16, ~std::uint64_t{0}, DmaDirection::Read));
  EXPECT_EQ(iommu.fault_count(), 4u);

  // The page table is untouched and used again once re-enabled.
  iommu.set_enabled(true);
  EXPECT_FALSE(iommu.translate(0, 1, DmaDirection::Read));
}

TEST(Iommu, MapGuestRamCoversExactlyRamAndReplacesTheTable) {
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x100000000, GuestPhysAddr(0), kPageSize, kReadOnly));
  const std::uint64_t ram = kMemorySize / 2;
  ASSERT_TRUE(iommu.map_guest_ram(ram));
  EXPECT_EQ(iommu.mapped_pages(), ram / kPageSize);

  const DmaTranslation all = iommu.translate(0, ram, DmaDirection::Write);
  ASSERT_TRUE(all);
  ASSERT_EQ(all.pieces().size(), 1u);  // identity: one contiguous piece
  EXPECT_EQ(all.pieces()[0].address, GuestPhysAddr(0));
  EXPECT_EQ(all.pieces()[0].length, ram);

  const DmaTranslation past = iommu.translate(ram - 1, 2, DmaDirection::Read);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.fault().iova, ram);
  EXPECT_FALSE(iommu.translate(0x100000000, 1, DmaDirection::Read));  // the old mapping is gone

  EXPECT_EQ(error_kind(iommu.map_guest_ram(2 * kMemorySize)), IommuError::kOutsideGuestMemory);
  EXPECT_EQ(error_kind(iommu.map_guest_ram(0)), IommuError::kBadRange);
  EXPECT_EQ(error_kind(iommu.map_guest_ram(kPageSize + 1)), IommuError::kBadRange);
}

TEST(Iommu, CopiesMoveBytesThroughTheMappingAndNothingWhenBlocked) {
  testing::VectorMemory memory(kMemorySize);
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map(0x100000000, GuestPhysAddr(0x5000), kPageSize, kReadWrite));
  ASSERT_TRUE(iommu.map(0x100001000, GuestPhysAddr(0x2000), kPageSize, kReadOnly));

  // Across two pages that are not contiguous in guest memory.
  std::vector<std::uint8_t> data(0x20);
  for (std::size_t index = 0; index < data.size(); ++index)
    data[index] = static_cast<std::uint8_t>(index + 1);
  memory.fill_pattern(0x2000, 0x10, 0x40);
  std::vector<std::uint8_t> from_memory(0x20);
  EXPECT_FALSE(iommu.copy_from_memory(0x100000ff0, from_memory, memory));
  EXPECT_EQ(std::vector<std::uint8_t>(from_memory.begin(), from_memory.begin() + 0x10),
            memory.bytes(0x5ff0, 0x10));
  EXPECT_EQ(std::vector<std::uint8_t>(from_memory.begin() + 0x10, from_memory.end()),
            memory.bytes(0x2000, 0x10));

  // The second page is read-only: the write is refused and the first page,
  // which was writable, keeps its old contents.
  const auto before = memory.bytes(0x5ff0, 0x10);
  const auto fault = iommu.copy_to_memory(0x100000ff0, data, memory);
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->iova, 0x100001000u);
  EXPECT_EQ(fault->kind, IommuFaultKind::ReadOnly);
  EXPECT_EQ(memory.bytes(0x5ff0, 0x10), before);
  EXPECT_EQ(iommu.fault_count(), 1u);

  EXPECT_FALSE(iommu.copy_to_memory(0x100000000, data, memory));
  EXPECT_EQ(memory.bytes(0x5000, 0x20), data);
}

TEST(Iommu, BypassCopiesStopAtTheEndOfTheMemoryTheyAreGiven) {
  // Guest memory as the IOMMU knows it may be larger than what the device
  // can reach (a smaller GuestMemoryAccess): still nothing moves past it.
  testing::VectorMemory memory(kMemorySize / 2);
  Iommu iommu(kMemorySize);
  iommu.set_enabled(false);
  std::vector<std::uint8_t> data(0x20, 0xab);
  const auto fault = iommu.copy_to_memory(kMemorySize / 2 - 0x10, data, memory);
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->kind, IommuFaultKind::NotMapped);
  EXPECT_EQ(memory.bytes(kMemorySize / 2 - 0x10, 0x10), std::vector<std::uint8_t>(0x10, 0));
}

TEST(Iommu, ProtectedFramesRefuseDeviceWritesButNotReads) {
  testing::VectorMemory memory(kMemorySize);
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map_guest_ram(kMemorySize));
  iommu.protect_from_device_writes(GuestPhysAddr(0x7000), true);
  EXPECT_EQ(iommu.protected_frames(), 1u);

  std::vector<std::uint8_t> data(2 * kPageSize, 0x5a);
  const auto fault = iommu.copy_to_memory(0x6000, data, memory);
  ASSERT_TRUE(fault);
  EXPECT_EQ(fault->iova, 0x7000u);
  EXPECT_EQ(fault->kind, IommuFaultKind::ReadOnly);
  EXPECT_EQ(memory.bytes(0x6000, 0x10), std::vector<std::uint8_t>(0x10, 0));  // nothing moved
  std::vector<std::uint8_t> out(kPageSize);
  EXPECT_FALSE(iommu.copy_from_memory(0x7000, out, memory));

  iommu.protect_from_device_writes(GuestPhysAddr(0x7fff), false);  // any address in the frame
  EXPECT_EQ(iommu.protected_frames(), 0u);
  EXPECT_FALSE(iommu.copy_to_memory(0x6000, data, memory));
  EXPECT_EQ(memory.bytes(0x7000, 0x10), std::vector<std::uint8_t>(0x10, 0x5a));

  // The IOMMU off protects nothing: that is what off means.
  iommu.protect_from_device_writes(GuestPhysAddr(0x7000), true);
  iommu.set_enabled(false);
  EXPECT_FALSE(iommu.copy_to_memory(0x7000, out, memory));
}

TEST(Iommu, ProtectionIsNeverObservedHalfWayThroughADma) {
  // A device thread keeps writing a two-page buffer whose second page the
  // test protects and unprotects: each DMA lands whole or not at all, so the
  // two pages always hold the same generation.
  testing::VectorMemory memory(kMemorySize);
  Iommu iommu(kMemorySize);
  ASSERT_TRUE(iommu.map_guest_ram(kMemorySize));
  std::atomic<bool> stop{false};
  std::thread device([&] {
    std::vector<std::uint8_t> data(2 * kPageSize);
    for (std::uint8_t generation = 1; !stop.load(); ++generation) {
      std::fill(data.begin(), data.end(), generation);
      (void)iommu.copy_to_memory(0x10000, data, memory);
    }
  });
  for (int round = 0; round < 2000; ++round) {
    iommu.protect_from_device_writes(GuestPhysAddr(0x11000), true);
    // Protected now, and no DMA is in flight: the two pages agree.
    const auto first = memory.bytes(0x10000, 1);
    const auto second = memory.bytes(0x11fff, 1);
    ASSERT_EQ(first, second) << "round " << round;
    iommu.protect_from_device_writes(GuestPhysAddr(0x11000), false);
  }
  stop.store(true);
  device.join();
}

}  // namespace
}  // namespace vmlab::devices
