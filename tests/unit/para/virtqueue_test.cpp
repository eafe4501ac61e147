// Split virtqueues (virtio 1.2, 2.7): the ring mechanics on their own, and
// every malformed chain a hostile driver can post, which must end in
// DEVICE_NEEDS_RESET with nothing written anywhere.
#include <vmlab/devices/virtqueue.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "para_test_support.hpp"

namespace vmlab::devices::testing {
namespace {

constexpr std::uint16_t kTestQueueSize = 32;

class VirtqueueTest : public VirtioBlkFixture {
 protected:
  VirtqueueTest() { driver().clear_rings(); }

  static VirtqueueLayout layout(std::uint16_t size = kTestQueueSize) {
    return {size, GuestPhysAddr(TestDriver::kDescriptorTable),
            GuestPhysAddr(TestDriver::kDriverArea), GuestPhysAddr(TestDriver::kDeviceArea)};
  }
  Virtqueue create(VirtqueueFeatures features = {}) {
    auto queue = Virtqueue::create(m_memory, layout(), 256, features);
    EXPECT_TRUE(queue.ok()) << queue.error().message;
    return std::move(queue).value();
  }
  // Why create() refused `candidate`, or no kind if it accepted it.
  std::error_code create_error(const VirtqueueLayout& candidate) {
    return error_kind(Virtqueue::create(m_memory, candidate, 256, {}));
  }
};

TEST_F(VirtqueueTest, CreateChecksSizeAlignmentAndPlacement) {
  for (const std::uint16_t size : {std::uint16_t{0}, std::uint16_t{48}, std::uint16_t{512}}) {
    EXPECT_EQ(create_error(layout(size)), VirtqueueError::kBadLayout) << size;
  }
  EXPECT_EQ(create_error(layout(1)), std::error_code{});
  EXPECT_EQ(create_error(layout(256)), std::error_code{});

  VirtqueueLayout bad = layout();
  bad.driver_area = GuestPhysAddr(TestDriver::kDriverArea + 1);  // not 2-byte aligned
  EXPECT_EQ(create_error(bad), VirtqueueError::kBadLayout);
  bad = layout();
  bad.device_area = GuestPhysAddr(TestDriver::kDeviceArea + 2);  // not 4-byte aligned
  EXPECT_EQ(create_error(bad), VirtqueueError::kBadLayout);
  bad = layout();
  bad.driver_area = GuestPhysAddr(kGuestMemorySize - 6 - 2 * kTestQueueSize + 2);  // past RAM
  EXPECT_EQ(create_error(bad), VirtqueueError::kBadLayout);
  bad.driver_area = GuestPhysAddr(kGuestMemorySize - 6 - 2 * kTestQueueSize);
  EXPECT_EQ(create_error(bad), std::error_code{});
}

TEST_F(VirtqueueTest, ARefusedLayoutSaysWhichAreaAndWhy) {
  VirtqueueLayout bad = layout();
  bad.driver_area = GuestPhysAddr(TestDriver::kDriverArea + 1);
  auto queue = Virtqueue::create(m_memory, bad, 256, {});
  ASSERT_FALSE(queue.ok());
  EXPECT_NE(
      queue.error().message.find("driver area (available ring) at 0x2001 is not 2-byte aligned"),
      std::string::npos);
}

TEST_F(VirtqueueTest, PopOnAnEmptyRingReturnsNothing) {
  Virtqueue queue = create();
  auto popped = queue.pop();
  ASSERT_TRUE(popped.ok());
  EXPECT_FALSE(popped->has_value());
  EXPECT_EQ(queue.last_available_index(), 0);
}

TEST_F(VirtqueueTest, PopFlattensTheChain) {
  Virtqueue queue = create({.indirect_descriptors = true});
  const std::uint16_t head = driver().post({{0x10000, 16, false}, {0x10100, 100, false}},
                                           {{0x10200, 512, true}, {0x10400, 1, true}});
  auto popped = queue.pop();
  ASSERT_TRUE(popped.ok()) << popped.error().message;
  ASSERT_TRUE(popped->has_value());
  const DescriptorChain& chain = **popped;
  EXPECT_EQ(chain.head, head);
  ASSERT_EQ(chain.buffers.size(), 4u);
  EXPECT_EQ(chain.buffers[1].address, GuestPhysAddr(0x10100));
  EXPECT_EQ(chain.buffers[1].length, 100u);
  EXPECT_FALSE(chain.buffers[1].device_writable);
  EXPECT_EQ(chain.buffers[2].address, GuestPhysAddr(0x10200));
  EXPECT_TRUE(chain.buffers[2].device_writable);
  EXPECT_EQ(chain.readable_length, 116u);
  EXPECT_EQ(chain.writable_length, 513u);
  EXPECT_EQ(queue.last_available_index(), 1);
  EXPECT_EQ(queue.chains_popped(), 1u);
  auto empty = queue.pop();
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
}

TEST_F(VirtqueueTest, ChainReadAndWriteCrossBufferBoundaries) {
  Virtqueue queue = create();
  const std::uint64_t source = driver().allocate_filled(24, 1);
  driver().post(
      {{source, 10, false}, {source + 10, 14, false}, {0x20000, 4, true}, {0x20010, 4, true}});
  auto popped = queue.pop();
  ASSERT_TRUE(popped.ok() && popped->has_value());
  const DescriptorChain& chain = **popped;

  std::vector<std::uint8_t> read(12);
  ASSERT_TRUE(chain.read(m_memory, 6, read).ok());
  EXPECT_EQ(read, m_memory.get(source + 6, 12));
  std::vector<std::uint8_t> too_long(20);
  EXPECT_EQ(error_kind(chain.read(m_memory, 6, too_long)), VirtqueueError::kPastChainEnd);

  const std::vector<std::uint8_t> written{1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(chain.write(m_memory, 1, written).ok());
  EXPECT_EQ(m_memory.get(0x20000, 4), (std::vector<std::uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(m_memory.get(0x20010, 4), (std::vector<std::uint8_t>{4, 5, 6, 0}));
  EXPECT_EQ(error_kind(chain.write(m_memory, 3, written)), VirtqueueError::kPastChainEnd);
}

TEST_F(VirtqueueTest, PushUsedWritesTheElementAndThenTheIndex) {
  Virtqueue queue = create();
  ASSERT_TRUE(queue.push_used(7, 513).ok());
  EXPECT_EQ(driver().used_index(), 1);
  EXPECT_EQ(driver().used(0).id, 7u);
  EXPECT_EQ(driver().used(0).length, 513u);
  EXPECT_EQ(queue.used_index(), 1);
  EXPECT_EQ(queue.used_pushed(), 1u);
}

TEST_F(VirtqueueTest, RingIndicesWrapAtSixteenBits) {
  // 70000 chains through a 4-entry queue: both free-running indices pass
  // 65535 and the ring slots cycle (virtio 1.2, 2.7.6, 2.7.8).
  auto created = Virtqueue::create(m_memory, layout(4), 4, {.event_index = true});
  ASSERT_TRUE(created.ok());
  Virtqueue& queue = *created;
  TestDriver small(transport(), m_memory, 4);
  small.clear_rings();
  small.write_descriptor(0, 0x10000, 16, 0, 0);
  small.set_used_event(0xffff);
  int interrupts = 0;
  for (int round = 0; round < 70000; ++round) {
    small.publish(0);
    auto popped = queue.pop();
    ASSERT_TRUE(popped.ok() && popped->has_value()) << "round " << round;
    ASSERT_TRUE(queue.push_used(0, 0).ok());
    auto interrupt = queue.needs_interrupt();
    ASSERT_TRUE(interrupt.ok());
    if (*interrupt) ++interrupts;
  }
  EXPECT_EQ(queue.last_available_index(), static_cast<std::uint16_t>(70000));
  EXPECT_EQ(small.used_index(), static_cast<std::uint16_t>(70000));
  // used_event 0xffff is crossed once, when the used index goes to 0 (round 65535).
  EXPECT_EQ(interrupts, 1);
}

TEST_F(VirtqueueTest, NeedsInterruptFollowsVringNeedEvent) {
  Virtqueue queue = create({.event_index = true});
  EXPECT_FALSE(*queue.needs_interrupt());  // nothing used yet
  driver().set_used_event(0);
  ASSERT_TRUE(queue.push_used(0, 0).ok());
  EXPECT_TRUE(*queue.needs_interrupt());  // 0 -> 1 passes used_event 0
  ASSERT_TRUE(queue.push_used(0, 0).ok());
  EXPECT_FALSE(*queue.needs_interrupt());  // 1 -> 2 does not
  driver().set_used_event(3);
  ASSERT_TRUE(queue.push_used(0, 0).ok());
  ASSERT_TRUE(queue.push_used(0, 0).ok());
  ASSERT_TRUE(queue.push_used(0, 0).ok());
  EXPECT_TRUE(*queue.needs_interrupt());  // 2 -> 5 passes 3
}

// Hostile chains through the transport. Each must set DEVICE_NEEDS_RESET,
// raise a configuration-change interrupt, record one problem, write nothing
// to guest memory or the disk, and stop the queue until reset.
class HostileChainTest : public VirtioBlkFixture {
 protected:
  HostileChainTest() { driver().initialize(kBlockDriverFeatures); }

  // `kind` is why; `detail` is what the recorded problem names (a
  // descriptor, an address), for the person reading it.
  void kick_and_expect_needs_reset(std::error_code kind, const std::string& detail = "") {
    const std::vector<std::uint8_t> memory_before = m_memory.bytes();
    const std::vector<std::uint8_t> disk_before = m_disk->bytes();
    driver().kick();

    EXPECT_NE(transport().device_status() & virtio::kStatusDeviceNeedsReset, 0u);
    EXPECT_NE(driver().read32(mmio::kStatus) & virtio::kStatusDeviceNeedsReset, 0u);
    EXPECT_EQ(driver().read32(mmio::kInterruptStatus), virtio::kInterruptConfigChange);
    EXPECT_TRUE(m_irq_level);
    ASSERT_EQ(transport().problems().size(), 1u);
    EXPECT_EQ(transport().problem_count(), 1u);
    EXPECT_EQ(transport().statistics().device_errors, 1u);
    EXPECT_EQ(transport().last_device_error(), kind);
    EXPECT_NE(transport().problems()[0].find(detail), std::string::npos)
        << "problem: " << transport().problems()[0];
    EXPECT_EQ(transport().problems()[0].rfind("virtio-blk: queue 0: ", 0), 0u)
        << "problem: " << transport().problems()[0];
    EXPECT_EQ(driver().used_index(), 0);
    EXPECT_TRUE(unchanged_except(memory_before, m_memory.bytes(), {}));
    EXPECT_EQ(m_disk->bytes(), disk_before);

    // The queue stays stopped: a good request is not served until reset.
    const PostedRequest later = driver().post_read();
    driver().kick();
    EXPECT_EQ(driver().used_index(), 0);
    EXPECT_EQ(status_byte(later), kStatusUnwritten);
    EXPECT_EQ(transport().problem_count(), 1u);
  }

  // A well-formed read of sector 0 whose descriptors a test then corrupts.
  std::uint64_t m_header = 0;
  std::uint64_t m_data = 0;
  std::uint64_t m_status = 0;

 private:
  void prepare_read() {
    m_header = driver().write_block_header(virtio::kBlockRequestIn, 0);
    m_data = driver().allocate(512);
    m_status = driver().allocate(1);
  }
};

TEST_F(HostileChainTest, LoopingChain) {
  driver().write_descriptor(0, m_header, 16, virtio::kDescriptorNext, 1);
  driver().write_descriptor(1, m_data, 512, virtio::kDescriptorNext, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kDescriptorLoop,
                              "descriptor 0: chain is longer than its 32-entry table");
}

TEST_F(HostileChainTest, DescriptorThatIsItsOwnNext) {
  driver().write_descriptor(5, m_header, 16, virtio::kDescriptorNext, 5);
  driver().publish(5);
  kick_and_expect_needs_reset(VirtqueueError::kDescriptorLoop);
}

TEST_F(HostileChainTest, LoopInsideAnIndirectTable) {
  const std::uint64_t table = driver().allocate(32);
  driver().write_descriptor_at(table, m_header, 16, virtio::kDescriptorNext, 1);
  driver().write_descriptor_at(table + 16, m_data, 512,
                               virtio::kDescriptorNext | virtio::kDescriptorWrite, 0);
  driver().write_descriptor(0, table, 32, virtio::kDescriptorIndirect, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kDescriptorLoop, "its 2-entry table");
}

TEST_F(HostileChainTest, HeadIndexOutOfRange) {
  driver().publish(40);
  kick_and_expect_needs_reset(VirtqueueError::kDescriptorOutOfRange, "names descriptor 40");
}

TEST_F(HostileChainTest, NextIndexOutOfRange) {
  driver().write_descriptor(0, m_header, 16, virtio::kDescriptorNext, 300);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kDescriptorOutOfRange, "descriptor 300");
}

TEST_F(HostileChainTest, IndirectNextIndexOutOfRange) {
  const std::uint64_t table = driver().allocate(32);
  driver().write_descriptor_at(table, m_header, 16, virtio::kDescriptorNext, 2);
  driver().write_descriptor(0, table, 32, virtio::kDescriptorIndirect, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kDescriptorOutOfRange,
                              "indirect descriptor 2 (table at 0x");
}

TEST_F(HostileChainTest, BufferRunsPastTheEndOfRam) {
  driver().post({{m_header, 16, false}, {kGuestMemorySize - 256, 512, true}, {m_status, 1, true}});
  kick_and_expect_needs_reset(VirtqueueError::kOutsideGuestMemory, "buffer [0x1fff00, +0x200)");
}

TEST_F(HostileChainTest, BufferFarOutsideRam) {
  driver().post({{m_header, 16, false}, {1ULL << 40, 512, true}, {m_status, 1, true}});
  kick_and_expect_needs_reset(VirtqueueError::kOutsideGuestMemory,
                              "buffer [0x10000000000, +0x200)");
}

TEST_F(HostileChainTest, BufferLengthWrapsTheAddressSpace) {
  driver().post({{m_header, 16, false}, {0xfffffffffffffe00ULL, 0x400, true}, {m_status, 1, true}});
  kick_and_expect_needs_reset(VirtqueueError::kOutsideGuestMemory);
}

TEST_F(HostileChainTest, IndirectInsideIndirect) {
  const std::uint64_t inner = driver().write_indirect_table({{m_status, 1, true}});
  const std::uint64_t outer = driver().allocate(32);
  driver().write_descriptor_at(outer, m_header, 16, virtio::kDescriptorNext, 1);
  driver().write_descriptor_at(outer + 16, inner, 16, virtio::kDescriptorIndirect, 0);
  driver().write_descriptor(0, outer, 32, virtio::kDescriptorIndirect, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kBadIndirectTable);
}

TEST_F(HostileChainTest, IndirectCombinedWithNext) {
  const std::uint64_t table = driver().write_indirect_table({{m_header, 16, false}});
  driver().write_descriptor(0, table, 16, virtio::kDescriptorIndirect | virtio::kDescriptorNext, 1);
  driver().write_descriptor(1, m_status, 1, virtio::kDescriptorWrite, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kBadIndirectTable);
}

TEST_F(HostileChainTest, IndirectTableLengthNotAMultipleOf16) {
  const std::uint64_t table =
      driver().write_indirect_table({{m_header, 16, false}, {m_status, 1, true}});
  driver().write_descriptor(0, table, 24, virtio::kDescriptorIndirect, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kBadIndirectTable, "length 24");
}

TEST_F(HostileChainTest, IndirectTableOfLengthZero) {
  driver().write_descriptor(0, 0x10000, 0, virtio::kDescriptorIndirect, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kBadIndirectTable, "length 0");
}

TEST_F(HostileChainTest, IndirectTableOutsideRam) {
  driver().write_descriptor(0, kGuestMemorySize - 16, 32, virtio::kDescriptorIndirect, 0);
  driver().publish(0);
  kick_and_expect_needs_reset(VirtqueueError::kOutsideGuestMemory,
                              "indirect table [0x1ffff0, +0x20)");
}

TEST_F(HostileChainTest, IndirectWithoutTheFeature) {
  driver().initialize(kBlockDriverFeatures & ~virtio::kFeatureIndirectDescriptors);
  driver().post_block(virtio::kBlockRequestIn, 0, {{m_data, 512, true}}, /*indirect=*/true);
  kick_and_expect_needs_reset(VirtqueueError::kBadIndirectTable);
}

TEST_F(HostileChainTest, AvailableIndexJumpsByMoreThanTheQueueSize) {
  driver().set_available_index(kTestQueueSize + 1);
  kick_and_expect_needs_reset(VirtqueueError::kBadAvailableIndex, "from 0 to 33");
}

TEST_F(HostileChainTest, ReadableBufferAfterAWritableOne) {
  driver().post(
      {{m_header, 16, false}, {m_data, 512, true}, {m_data, 8, false}, {m_status, 1, true}});
  kick_and_expect_needs_reset(VirtqueueError::kBadBufferOrder);
}

TEST_F(HostileChainTest, ChainTooShortForTheHeader) {
  driver().post({{m_header, 8, false}, {m_status, 1, true}});
  kick_and_expect_needs_reset(VirtioBlkError::kMalformedRequest, "8 device-readable bytes");
  EXPECT_EQ(m_blk->statistics().malformed_requests, 1u);
}

TEST_F(HostileChainTest, NoStatusDescriptor) {
  driver().post({{m_header, 16, false}, {m_data, 512, false}});
  kick_and_expect_needs_reset(VirtioBlkError::kMalformedRequest);
}

TEST_F(HostileChainTest, EmptyStatusDescriptor) {
  driver().post({{m_header, 16, false}, {m_data, 512, true}, {m_status, 0, true}});
  kick_and_expect_needs_reset(VirtioBlkError::kMalformedRequest);
}

TEST_F(HostileChainTest, RequestsBeforeAMalformedOneStillComplete) {
  const PostedRequest good = driver().post_block(virtio::kBlockRequestIn, 0, {{m_data, 512, true}});
  driver().publish(40);
  driver().kick();
  EXPECT_EQ(status_byte(good), virtio::kBlockStatusOk);
  ASSERT_EQ(driver().used_index(), 1);
  EXPECT_EQ(driver().used(0).id, good.head);
  EXPECT_EQ(driver().read32(mmio::kInterruptStatus),
            virtio::kInterruptUsedBuffer | virtio::kInterruptConfigChange);
  EXPECT_EQ(transport().statistics().requests_completed, 1u);
  EXPECT_EQ(transport().problem_count(), 1u);
}

TEST_F(HostileChainTest, ResetRecoversTheDevice) {
  driver().publish(40);
  driver().kick();
  ASSERT_NE(transport().device_status() & virtio::kStatusDeviceNeedsReset, 0u);

  driver().initialize(kBlockDriverFeatures);  // starts by writing 0 to Status
  EXPECT_FALSE(m_irq_level);
  const PostedRequest request =
      driver().post_block(virtio::kBlockRequestIn, 3, {{m_data, 512, true}});
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(m_memory.get(m_data, 512), m_disk->sector_bytes(3, 1));
  EXPECT_EQ(driver().read32(mmio::kStatus) & virtio::kStatusDeviceNeedsReset, 0u);
  EXPECT_EQ(transport().problems().size(), 1u);  // the record survives the reset
}

TEST_F(HostileChainTest, ProblemsKeepTheMostRecentOnes) {
  for (std::uint16_t round = 0; round < 20; ++round) {
    driver().initialize(kBlockDriverFeatures);
    driver().publish(static_cast<std::uint16_t>(100 + round));
    driver().kick();
  }
  EXPECT_EQ(transport().problem_count(), 20u);
  ASSERT_EQ(transport().problems().size(), VirtioMmioTransport::kProblemLimit);
  EXPECT_NE(transport().problems().front().find("names descriptor 104,"), std::string::npos);
  EXPECT_NE(transport().problems().back().find("names descriptor 119,"), std::string::npos);
  EXPECT_EQ(transport().statistics().device_errors, 20u);
}

}  // namespace
}  // namespace vmlab::devices::testing
