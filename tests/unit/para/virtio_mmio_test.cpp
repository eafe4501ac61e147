// The virtio-mmio transport driven through its registers as a guest driver
// would (virtio 1.2, 4.2).
#include <vmlab/devices/virtio_mmio.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>

#include "para_test_support.hpp"

namespace vmlab::devices::testing {
namespace {

using VirtioMmioTest = VirtioBlkFixture;

constexpr std::uint32_t kNegotiated =
    virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk;

TEST_F(VirtioMmioTest, IdentificationRegisters) {
  EXPECT_EQ(driver().read32(mmio::kMagicValue), 0x74726976u);
  EXPECT_EQ(driver().read32(mmio::kVersion), 2u);
  EXPECT_EQ(driver().read32(mmio::kDeviceId), 2u);
  EXPECT_EQ(driver().read32(mmio::kVendorId), VirtioMmioTransport::kVendorId);
  EXPECT_EQ(driver().read32(mmio::kStatus), 0u);
  EXPECT_EQ(driver().read32(mmio::kConfigGeneration), 0u);
  EXPECT_EQ(driver().read32(mmio::kSharedMemoryLengthLow), 0xffffffffu);
  EXPECT_EQ(transport().name(), "virtio-blk");
}

TEST_F(VirtioMmioTest, OffersVersion1AndTheBlockFeatures) {
  driver().write32(mmio::kDeviceFeaturesSelect, 0);
  EXPECT_EQ(driver().read32(mmio::kDeviceFeatures),
            (1u << 1) | (1u << 2) | (1u << 6) | (1u << 9) | (1u << 28));
  driver().write32(mmio::kDeviceFeaturesSelect, 1);
  EXPECT_EQ(driver().read32(mmio::kDeviceFeatures), 1u);  // VIRTIO_F_VERSION_1, bit 32
  driver().write32(mmio::kDeviceFeaturesSelect, 2);
  EXPECT_EQ(driver().read32(mmio::kDeviceFeatures), 0u);
}

TEST_F(VirtioMmioTest, EventIndexAndReadOnlyAreOfferedOnlyWhenTheyApply) {
  EXPECT_EQ(driver().device_features() & virtio::kFeatureEventIndex, 0u);
  EXPECT_EQ(driver().device_features() & virtio::kBlockFeatureReadOnly, 0u);
  start({.event_index = true}, /*read_only=*/true);
  EXPECT_NE(driver().device_features() & virtio::kFeatureEventIndex, 0u);
  EXPECT_NE(driver().device_features() & virtio::kBlockFeatureReadOnly, 0u);
}

TEST_F(VirtioMmioTest, RegistersAre32BitsWide) {
  std::array<std::uint8_t, 8> wide{};
  transport().read(mmio::kMagicValue, wide);
  EXPECT_EQ(wide, (std::array<std::uint8_t, 8>{}));
  std::array<std::uint8_t, 2> narrow{};
  transport().read(mmio::kMagicValue, narrow);
  EXPECT_EQ(narrow, (std::array<std::uint8_t, 2>{}));
  std::array<std::uint8_t, 1> byte{};
  transport().read(mmio::kVersion, byte);
  EXPECT_EQ(byte[0], 0);
  std::array<std::uint8_t, 4> misaligned{};
  transport().read(mmio::kMagicValue + 1, misaligned);
  EXPECT_EQ(misaligned, (std::array<std::uint8_t, 4>{}));

  const std::array<std::uint8_t, 1> acknowledge{virtio::kStatusAcknowledge};
  transport().write(mmio::kStatus, acknowledge);
  EXPECT_EQ(driver().read32(mmio::kStatus), 0u);
  const std::array<std::uint8_t, 4> misaligned_write{1, 0, 0, 0};
  transport().write(mmio::kStatus + 2, misaligned_write);
  EXPECT_EQ(driver().read32(mmio::kStatus), 0u);
}

TEST_F(VirtioMmioTest, AcceptsASubsetThatIncludesVersion1) {
  EXPECT_TRUE(driver().negotiate(virtio::kFeatureVersion1 | virtio::kBlockFeatureFlush));
  EXPECT_EQ(driver().read32(mmio::kStatus), kNegotiated);
  EXPECT_EQ(transport().driver_features(), virtio::kFeatureVersion1 | virtio::kBlockFeatureFlush);
  EXPECT_TRUE(transport().problems().empty());
}

TEST_F(VirtioMmioTest, RefusesFeaturesOkWithoutVersion1) {
  EXPECT_FALSE(driver().negotiate(virtio::kBlockFeatureFlush));
  EXPECT_EQ(driver().read32(mmio::kStatus), virtio::kStatusAcknowledge | virtio::kStatusDriver);
  ASSERT_EQ(transport().problems().size(), 1u);
  EXPECT_NE(transport().problems()[0].find("VIRTIO_F_VERSION_1"), std::string::npos);
}

TEST_F(VirtioMmioTest, RefusesFeaturesOkForAFeatureNotOffered) {
  constexpr std::uint64_t kGeometry = 1ULL << 4;  // VIRTIO_BLK_F_GEOMETRY, not offered
  EXPECT_FALSE(driver().negotiate(virtio::kFeatureVersion1 | kGeometry));
  EXPECT_EQ(driver().read32(mmio::kStatus) & virtio::kStatusFeaturesOk, 0u);
  ASSERT_EQ(transport().problems().size(), 1u);
  EXPECT_NE(transport().problems()[0].find("0x10"), std::string::npos);

  // EVENT_IDX is refused when the option did not offer it.
  EXPECT_FALSE(driver().negotiate(virtio::kFeatureVersion1 | virtio::kFeatureEventIndex));
}

TEST_F(VirtioMmioTest, RefusesFeaturesOkForABitAbove63) {
  driver().write32(mmio::kStatus, virtio::kStatusAcknowledge | virtio::kStatusDriver);
  driver().write32(mmio::kDriverFeaturesSelect, 1);
  driver().write32(mmio::kDriverFeatures, 1);
  driver().write32(mmio::kDriverFeaturesSelect, 2);
  driver().write32(mmio::kDriverFeatures, 1);
  driver().write32(mmio::kStatus, kNegotiated);
  EXPECT_EQ(driver().read32(mmio::kStatus) & virtio::kStatusFeaturesOk, 0u);
}

TEST_F(VirtioMmioTest, DriverFeaturesAreFixedOnceAccepted) {
  ASSERT_TRUE(driver().negotiate(virtio::kFeatureVersion1));
  driver().write32(mmio::kDriverFeaturesSelect, 0);
  driver().write32(mmio::kDriverFeatures, static_cast<std::uint32_t>(virtio::kBlockFeatureFlush));
  EXPECT_EQ(transport().driver_features(), virtio::kFeatureVersion1);
}

TEST_F(VirtioMmioTest, DriverOkWithoutFeaturesOkIsIgnored) {
  driver().write32(mmio::kStatus,
                   virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusDriverOk);
  EXPECT_EQ(driver().read32(mmio::kStatus), virtio::kStatusAcknowledge | virtio::kStatusDriver);
  ASSERT_EQ(transport().problems().size(), 1u);
  EXPECT_NE(transport().problems()[0].find("DRIVER_OK"), std::string::npos);
}

TEST_F(VirtioMmioTest, TheDriverCannotSetOrClearDeviceNeedsReset) {
  driver().write32(mmio::kStatus, virtio::kStatusAcknowledge | virtio::kStatusDeviceNeedsReset);
  EXPECT_EQ(driver().read32(mmio::kStatus), virtio::kStatusAcknowledge);
}

TEST_F(VirtioMmioTest, QueueRegistersFollowQueueSel) {
  driver().write32(mmio::kQueueSelect, 0);
  EXPECT_EQ(driver().read32(mmio::kQueueSizeMaximum), 256u);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u);
  driver().write32(mmio::kQueueSelect, 1);
  EXPECT_EQ(driver().read32(mmio::kQueueSizeMaximum), 0u);  // no such queue
  driver().write32(mmio::kQueueReady, 1);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u);

  start({.queue_size = 100});  // rounded down to a power of two
  EXPECT_EQ(driver().read32(mmio::kQueueSizeMaximum), 64u);
}

TEST_F(VirtioMmioTest, QueueReadyReadsBackOne) {
  ASSERT_TRUE(driver().negotiate(kBlockDriverFeatures));
  driver().setup_queue(32);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 1u);
  EXPECT_TRUE(transport().problems().empty());
}

TEST_F(VirtioMmioTest, QueueOfNonPowerOfTwoSizeNeedsReset) {
  ASSERT_TRUE(driver().negotiate(kBlockDriverFeatures));
  driver().setup_queue(24);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u);
  EXPECT_EQ(driver().read32(mmio::kStatus), kNegotiated | virtio::kStatusDeviceNeedsReset);
  ASSERT_EQ(transport().problems().size(), 1u);
  EXPECT_EQ(transport().last_device_error(), VirtqueueError::kBadLayout);
  EXPECT_NE(transport().problems()[0].find("queue size 24"), std::string::npos);
  // No configuration-change interrupt before DRIVER_OK (virtio 1.2, 2.1.2).
  EXPECT_EQ(driver().read32(mmio::kInterruptStatus), 0u);
}

TEST_F(VirtioMmioTest, QueueLargerThanQueueNumMaxNeedsReset) {
  ASSERT_TRUE(driver().negotiate(kBlockDriverFeatures));
  driver().write32(mmio::kQueueSize, 512);
  driver().write32(mmio::kQueueReady, 1);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u);
  EXPECT_NE(driver().read32(mmio::kStatus) & virtio::kStatusDeviceNeedsReset, 0u);
  EXPECT_EQ(transport().last_device_error(), VirtqueueError::kBadLayout);
  driver().write32(mmio::kStatus, 0);
  ASSERT_TRUE(driver().negotiate(kBlockDriverFeatures));
  driver().write32(mmio::kQueueSize, 0x10010);  // would be 16 if truncated to 16 bits
  driver().write32(mmio::kQueueReady, 1);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u);
  EXPECT_EQ(transport().problem_count(), 2u);
}

// Sets up queue 0 with its three areas at the given guest-physical
// addresses, as the driver would after a reset, and asks for QueueReady.
void ready_queue_at(TestDriver& driver, std::uint64_t descriptor_table, std::uint64_t driver_area,
                    std::uint64_t device_area) {
  driver.write32(mmio::kStatus, 0);
  ASSERT_TRUE(driver.negotiate(kBlockDriverFeatures));
  driver.write32(mmio::kQueueSize, 16);
  driver.write32(mmio::kQueueDescriptorLow, static_cast<std::uint32_t>(descriptor_table));
  driver.write32(mmio::kQueueDescriptorHigh, static_cast<std::uint32_t>(descriptor_table >> 32));
  driver.write32(mmio::kQueueDriverLow, static_cast<std::uint32_t>(driver_area));
  driver.write32(mmio::kQueueDeviceLow, static_cast<std::uint32_t>(device_area));
  driver.write32(mmio::kQueueReady, 1);
}

TEST_F(VirtioMmioTest, MisalignedOrOutsideRamRingsNeedReset) {
  // The descriptor table needs 16-byte alignment; the used ring would end
  // past the 2 MiB of RAM; the descriptor table 4 GiB up is outside it.
  const std::uint64_t misplaced[][3] = {{0x1008, 0x2000, 0x3000},
                                        {0x1000, 0x2000, kGuestMemorySize - 64},
                                        {0x1'0000'1000, 0x2000, 0x3000}};
  const char* const named[] = {"descriptor table at 0x1008", "device area (used ring)",
                               "descriptor table [0x100001000"};
  for (std::size_t index = 0; index < std::size(misplaced); ++index) {
    ready_queue_at(driver(), misplaced[index][0], misplaced[index][1], misplaced[index][2]);
    EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u) << index;
    EXPECT_EQ(transport().last_device_error(), VirtqueueError::kBadLayout) << index;
    ASSERT_EQ(transport().problems().size(), index + 1);
    EXPECT_NE(transport().problems()[index].find(named[index]), std::string::npos)
        << transport().problems()[index];
  }
}

TEST_F(VirtioMmioTest, QueueAddressesAreIgnoredWhileTheQueueIsReady) {
  driver().initialize(kBlockDriverFeatures);
  driver().write32(mmio::kQueueDescriptorLow, 0x5000);
  driver().write32(mmio::kQueueSize, 8);
  const PostedRequest request = driver().post_read();
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(driver().used_index(), 1);
}

TEST_F(VirtioMmioTest, NotificationsBeforeDriverOkAreIgnored) {
  ASSERT_TRUE(driver().negotiate(kBlockDriverFeatures));
  driver().setup_queue();
  const PostedRequest request = driver().post_read();
  driver().kick();
  EXPECT_EQ(driver().used_index(), 0);
  EXPECT_EQ(status_byte(request), kStatusUnwritten);
  EXPECT_EQ(transport().statistics().notifications, 1u);

  driver().driver_ok();
  driver().kick();
  EXPECT_EQ(driver().used_index(), 1);
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
}

TEST_F(VirtioMmioTest, FailedStopsService) {
  driver().initialize(kBlockDriverFeatures);
  driver().write32(mmio::kStatus, driver().read32(mmio::kStatus) | virtio::kStatusFailed);
  driver().post_read();
  driver().kick();
  EXPECT_EQ(driver().used_index(), 0);
}

TEST_F(VirtioMmioTest, InterruptIsAssertedUntilAcknowledged) {
  driver().initialize(kBlockDriverFeatures);
  driver().post_read();
  EXPECT_FALSE(m_irq_level);
  driver().kick();
  EXPECT_TRUE(m_irq_level);
  EXPECT_TRUE(transport().irq_level());
  EXPECT_EQ(driver().read32(mmio::kInterruptStatus), virtio::kInterruptUsedBuffer);
  driver().write32(mmio::kInterruptAcknowledge, virtio::kInterruptConfigChange);  // not pending
  EXPECT_TRUE(m_irq_level);
  driver().write32(mmio::kInterruptAcknowledge, virtio::kInterruptUsedBuffer);
  EXPECT_FALSE(m_irq_level);
  EXPECT_EQ(driver().read32(mmio::kInterruptStatus), 0u);
  EXPECT_EQ(m_irq_rising_edges, 1);
  EXPECT_EQ(transport().statistics().interrupts_raised, 1u);
}

TEST_F(VirtioMmioTest, ResetReturnsEverythingToItsInitialState) {
  driver().initialize(kBlockDriverFeatures);
  driver().post_read();
  driver().kick();
  ASSERT_TRUE(m_irq_level);

  driver().write32(mmio::kStatus, 0);
  EXPECT_EQ(driver().read32(mmio::kStatus), 0u);
  EXPECT_EQ(driver().read32(mmio::kInterruptStatus), 0u);
  EXPECT_FALSE(m_irq_level);
  EXPECT_EQ(driver().read32(mmio::kQueueReady), 0u);
  EXPECT_EQ(transport().driver_features(), 0u);

  // A notification after reset finds no queue and no DRIVER_OK.
  driver().post_read();
  transport().notify(0);
  EXPECT_EQ(driver().used_index(), 1);

  // The driver starts over with fresh rings; the device's indices restart at 0.
  driver().initialize(kBlockDriverFeatures);
  const PostedRequest request = driver().post_read();
  transport().notify(0);
  EXPECT_EQ(driver().used_index(), 1);
  EXPECT_EQ(driver().used(0).id, request.head);
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
}

TEST_F(VirtioMmioTest, NotifyIsTheSameAsAQueueNotifyWrite) {
  driver().initialize(kBlockDriverFeatures);
  driver().post_read();
  transport().notify(0);
  EXPECT_EQ(driver().used_index(), 1);
  transport().notify(7);  // no such queue: counted, otherwise ignored
  EXPECT_EQ(transport().statistics().notifications, 2u);
  EXPECT_EQ(transport().statistics().requests_completed, 1u);
  EXPECT_TRUE(transport().problems().empty());
}

TEST_F(VirtioMmioTest, ConfigSpaceHoldsCapacityAndLimits) {
  start({.segment_maximum = 100, .segment_size_maximum = 8192});
  EXPECT_EQ(driver().read32(mmio::kConfig + 0), kDiskSectors);  // capacity, low half
  EXPECT_EQ(driver().read32(mmio::kConfig + 4), 0u);            // capacity, high half
  EXPECT_EQ(driver().read32(mmio::kConfig + 8), 8192u);         // size_max
  EXPECT_EQ(driver().read32(mmio::kConfig + 12), 100u);         // seg_max
  EXPECT_EQ(driver().read32(mmio::kConfig + 20), 512u);         // blk_size
  EXPECT_EQ(driver().read32(mmio::kConfig + 24), 0u);           // past what vmlab fills in

  std::array<std::uint8_t, 8> capacity{};
  transport().read(mmio::kConfig, capacity);
  EXPECT_EQ(capacity, (std::array<std::uint8_t, 8>{kDiskSectors, 0, 0, 0, 0, 0, 0, 0}));
  std::array<std::uint8_t, 1> byte{};
  transport().read(mmio::kConfig + 9, byte);  // size_max, second byte
  EXPECT_EQ(byte[0], 0x20);
  std::array<std::uint8_t, 4> straddling{};  // blk_size bytes 1-3, then past the end
  transport().read(mmio::kConfig + 21, straddling);
  EXPECT_EQ(straddling, (std::array<std::uint8_t, 4>{0x02, 0x00, 0x00, 0x00}));

  driver().write32(mmio::kConfig + 0, 5);  // capacity is read-only
  EXPECT_EQ(driver().read32(mmio::kConfig + 0), kDiskSectors);
}

TEST_F(VirtioMmioTest, CountsRegisterAccesses) {
  driver().read32(mmio::kMagicValue);
  driver().read32(mmio::kConfig);
  driver().write32(mmio::kStatus, virtio::kStatusAcknowledge);
  EXPECT_EQ(transport().statistics().register_reads, 2u);
  EXPECT_EQ(transport().statistics().register_writes, 1u);
}

}  // namespace
}  // namespace vmlab::devices::testing
