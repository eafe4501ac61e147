// virtio-blk requests end to end: a test driver posts them on a split
// virtqueue, kicks the virtio-mmio transport and checks the fake disk, the
// guest buffers and the used ring (virtio 1.2, 5.2.6).
#include <vmlab/devices/virtio_blk.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "para_test_support.hpp"

namespace vmlab::devices::testing {
namespace {

class VirtioBlkTest : public VirtioBlkFixture {
 protected:
  VirtioBlkTest() { initialize(); }

  void initialize(std::uint64_t features = kBlockDriverFeatures) { driver().initialize(features); }

  // Snapshots taken just before a request that must fail.
  void snapshot() {
    m_memory_before = m_memory.bytes();
    m_disk_before = m_disk->bytes();
  }

  // The request was answered with `status` (and, for an I/O error, why:
  // `reason`), touching nothing but its status byte and the used ring.
  void expect_refused(const PostedRequest& request, std::uint8_t status,
                      std::error_code reason = {}) {
    EXPECT_EQ(status_byte(request), status);
    ASSERT_EQ(driver().used_index(), 1);
    EXPECT_EQ(driver().used(0).id, request.head);
    EXPECT_EQ(m_disk->bytes(), m_disk_before) << "the disk changed";
    EXPECT_TRUE(unchanged_except(m_memory_before, m_memory.bytes(),
                                 {{request.status_address, 1}, used_ring()}));
    if (status == virtio::kBlockStatusIoError) {
      EXPECT_EQ(last_io_error(), reason);
      EXPECT_EQ(m_blk->statistics().io_errors, 1u);
    }
    EXPECT_EQ(transport().device_status() & virtio::kStatusDeviceNeedsReset, 0u);
    EXPECT_TRUE(transport().problems().empty());
    EXPECT_TRUE(m_irq_level);
  }

  // Why the last request was an I/O error, or nothing if none was.
  std::error_code last_io_error() const {
    return m_blk->last_io_error() ? m_blk->last_io_error()->kind : std::error_code{};
  }

  std::vector<std::uint8_t> guest_bytes(std::uint64_t address, std::uint64_t length) const {
    return m_memory.get(address, length);
  }

  std::vector<std::uint8_t> m_memory_before;
  std::vector<std::uint8_t> m_disk_before;
};

TEST_F(VirtioBlkTest, WriteLandsAtTheSectorOffset) {
  const std::uint64_t data = driver().allocate_filled(1024, 1);
  const std::vector<std::uint8_t> disk_before = m_disk->bytes();
  const PostedRequest request =
      driver().post_block(virtio::kBlockRequestOut, 3, {{data, 1024, false}});
  driver().kick();

  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(m_disk->sector_bytes(3, 2), guest_bytes(data, 1024));
  std::vector<std::uint8_t> expected = disk_before;
  std::copy_n(guest_bytes(data, 1024).begin(), 1024, expected.begin() + 3 * 512);
  EXPECT_EQ(m_disk->bytes(), expected);
  ASSERT_EQ(driver().used_index(), 1);
  EXPECT_EQ(driver().used(0).id, request.head);
  EXPECT_EQ(driver().used(0).length, 1u);  // only the status byte is device-writable
  EXPECT_EQ(m_blk->statistics().write_requests, 1u);
  EXPECT_EQ(m_blk->statistics().bytes_written, 1024u);
  EXPECT_EQ(m_disk->writes(), 1);
}

TEST_F(VirtioBlkTest, ReadFillsTheGuestBuffersInOrder) {
  const std::uint64_t first = driver().allocate(512);
  driver().allocate(64);  // a gap the device must not touch
  const std::uint64_t second = driver().allocate(1024);
  snapshot();
  const PostedRequest request =
      driver().post_block(virtio::kBlockRequestIn, 5, {{first, 512, true}, {second, 1024, true}});
  const std::vector<std::uint8_t> posted = m_memory.bytes();
  driver().kick();

  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(guest_bytes(first, 512), m_disk->sector_bytes(5, 1));
  EXPECT_EQ(guest_bytes(second, 1024), m_disk->sector_bytes(6, 2));
  EXPECT_TRUE(
      unchanged_except(posted, m_memory.bytes(),
                       {{first, 512}, {second, 1024}, {request.status_address, 1}, used_ring()}));
  EXPECT_EQ(m_disk->bytes(), m_disk_before);
  EXPECT_EQ(driver().used(0).length, 512u + 1024u + 1u);
  EXPECT_EQ(m_blk->statistics().read_requests, 1u);
  EXPECT_EQ(m_blk->statistics().bytes_read, 1536u);
}

TEST_F(VirtioBlkTest, FlushReachesTheBackend) {
  const PostedRequest request = driver().post_block(virtio::kBlockRequestFlush, 0, {});
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(m_disk->flushes(), 1);
  EXPECT_EQ(m_blk->statistics().flush_requests, 1u);
}

TEST_F(VirtioBlkTest, GetIdReturnsTheSerialPaddedToTwentyBytes) {
  const std::uint64_t id = driver().allocate(20);
  m_memory.put(id, std::vector<std::uint8_t>(20, 0xcc));
  const PostedRequest request =
      driver().post_block(virtio::kBlockRequestGetId, 0, {{id, 20, true}});
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  const std::string expected = "vmlab-test-disk";
  std::vector<std::uint8_t> expected_bytes(expected.begin(), expected.end());
  expected_bytes.resize(20, 0);
  EXPECT_EQ(guest_bytes(id, 20), expected_bytes);
  EXPECT_EQ(driver().used(0).length, 21u);
  EXPECT_EQ(m_blk->statistics().get_id_requests, 1u);
}

TEST_F(VirtioBlkTest, GetIdTruncatesToTheBuffer) {
  start({}, false, "0123456789abcdefghijKLMNO");
  initialize();
  const std::uint64_t id = driver().allocate(20);
  const std::uint64_t after = driver().allocate(16);
  m_memory.put(after, std::vector<std::uint8_t>(16, 0xcc));
  const PostedRequest full = driver().post_block(virtio::kBlockRequestGetId, 0, {{id, 20, true}});
  driver().kick();
  EXPECT_EQ(status_byte(full), virtio::kBlockStatusOk);
  const std::string twenty = "0123456789abcdefghij";
  EXPECT_EQ(guest_bytes(id, 20), std::vector<std::uint8_t>(twenty.begin(), twenty.end()));

  const std::uint64_t short_id = driver().allocate(8);
  const PostedRequest partial =
      driver().post_block(virtio::kBlockRequestGetId, 0, {{short_id, 8, true}});
  driver().kick();
  EXPECT_EQ(status_byte(partial), virtio::kBlockStatusOk);
  EXPECT_EQ(guest_bytes(short_id, 8),
            std::vector<std::uint8_t>(twenty.begin(), twenty.begin() + 8));
  EXPECT_EQ(guest_bytes(after, 16), std::vector<std::uint8_t>(16, 0xcc));
}

TEST_F(VirtioBlkTest, HeaderAndStatusMayShareDescriptorsWithOtherParts) {
  // virtio 1.2, 2.7.4: the device may not rely on how the driver splits the
  // request: a header in two halves, and data sharing one buffer with the
  // status byte.
  const std::uint64_t header = driver().write_block_header(virtio::kBlockRequestIn, 9);
  const std::uint64_t data_and_status = driver().allocate(513);
  m_memory.put_le(data_and_status + 512, kStatusUnwritten, 1);
  driver().post({{header, 8, false}, {header + 8, 8, false}, {data_and_status, 513, true}});
  driver().kick();
  EXPECT_EQ(guest_bytes(data_and_status, 512), m_disk->sector_bytes(9, 1));
  EXPECT_EQ(m_memory.get_le(data_and_status + 512, 1), virtio::kBlockStatusOk);
  EXPECT_EQ(driver().used(0).length, 513u);
}

TEST_F(VirtioBlkTest, IndirectRequests) {
  const std::uint64_t source = driver().allocate_filled(1024, 7);
  const PostedRequest write = driver().post_block(
      virtio::kBlockRequestOut, 10, {{source, 512, false}, {source + 512, 512, false}},
      /*indirect=*/true);
  const std::uint64_t target = driver().allocate(1024);
  const PostedRequest read =
      driver().post_block(virtio::kBlockRequestIn, 10, {{target, 1024, true}}, /*indirect=*/true);
  driver().kick();
  EXPECT_EQ(status_byte(write), virtio::kBlockStatusOk);
  EXPECT_EQ(status_byte(read), virtio::kBlockStatusOk);
  EXPECT_EQ(m_disk->sector_bytes(10, 2), guest_bytes(source, 1024));
  EXPECT_EQ(guest_bytes(target, 1024), guest_bytes(source, 1024));
  ASSERT_EQ(driver().used_index(), 2);
  EXPECT_EQ(driver().used(0).id, write.head);
  EXPECT_EQ(driver().used(1).id, read.head);
  EXPECT_EQ(driver().used(1).length, 1025u);
}

TEST_F(VirtioBlkTest, DirectDescriptorsFollowedByAnIndirectTable) {
  // virtio 1.2, 2.7.5.3.2: normal descriptors, then one INDIRECT one.
  const std::uint64_t header = driver().write_block_header(virtio::kBlockRequestIn, 2);
  const std::uint64_t data = driver().allocate(512);
  const std::uint64_t status = driver().allocate(1);
  driver().post({{header, 16, false}}, {{data, 512, true}, {status, 1, true}});
  driver().kick();
  EXPECT_EQ(m_memory.get_le(status, 1), virtio::kBlockStatusOk);
  EXPECT_EQ(guest_bytes(data, 512), m_disk->sector_bytes(2, 1));
}

TEST_F(VirtioBlkTest, ABatchOfRequestsGetsOneInterrupt) {
  std::vector<PostedRequest> requests;
  std::vector<std::uint64_t> buffers;
  for (int index = 0; index < 8; ++index) {
    buffers.push_back(driver().allocate(512));
    requests.push_back(driver().post_block(
        virtio::kBlockRequestIn, static_cast<std::uint64_t>(index), {{buffers.back(), 512, true}}));
  }
  driver().kick();

  ASSERT_EQ(driver().used_index(), 8);
  for (std::uint16_t index = 0; index < 8; ++index) {
    EXPECT_EQ(driver().used(index).id, requests[index].head);
    EXPECT_EQ(status_byte(requests[index]), virtio::kBlockStatusOk);
    EXPECT_EQ(guest_bytes(buffers[index], 512), m_disk->sector_bytes(index, 1));
  }
  EXPECT_EQ(transport().statistics().notifications, 1u);
  EXPECT_EQ(transport().statistics().requests_completed, 8u);
  EXPECT_EQ(transport().statistics().interrupts_raised, 1u);
  EXPECT_EQ(m_irq_rising_edges, 1);
}

TEST_F(VirtioBlkTest, RingIndicesWrapAroundTheQueue) {
  // 32-entry queue, 3 descriptors a request: 10 requests per round, 7 rounds.
  for (int round = 0; round < 7; ++round) {
    std::vector<PostedRequest> requests;
    for (int index = 0; index < 10; ++index) {
      const std::uint64_t data = driver().allocate_filled(512, static_cast<std::uint8_t>(round));
      requests.push_back(driver().post_block(
          virtio::kBlockRequestOut, static_cast<std::uint64_t>(index), {{data, 512, false}}));
    }
    driver().kick();
    for (const PostedRequest& request : requests) {
      EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
    }
    driver().write32(mmio::kInterruptAcknowledge, virtio::kInterruptUsedBuffer);
  }
  EXPECT_EQ(driver().used_index(), 70);
  EXPECT_EQ(m_blk->statistics().write_requests, 70u);
  EXPECT_EQ(m_irq_rising_edges, 7);
  EXPECT_TRUE(transport().problems().empty());
}

TEST_F(VirtioBlkTest, NoInterruptFlagSuppressesTheInterrupt) {
  driver().set_available_flags(virtio::kAvailableNoInterrupt);
  const PostedRequest request = driver().post_read();
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(driver().used_index(), 1);
  EXPECT_FALSE(m_irq_level);
  EXPECT_EQ(driver().read32(mmio::kInterruptStatus), 0u);
  EXPECT_EQ(transport().statistics().interrupts_raised, 0u);
}

class VirtioBlkEventIndexTest : public VirtioBlkTest {
 protected:
  VirtioBlkEventIndexTest() {
    start({.event_index = true});
    initialize(kBlockDriverFeatures | virtio::kFeatureEventIndex);
  }

  void post_reads(int count) {
    for (int index = 0; index < count; ++index)
      driver().post_read();
  }
};

TEST_F(VirtioBlkEventIndexTest, InterruptsOnlyOncePastUsedEvent) {
  // used_event = 2: interrupt when the used index moves past entry 2
  // (vring_need_event, virtio 1.2, 2.7.10).
  driver().set_used_event(2);
  post_reads(2);
  driver().kick();
  EXPECT_EQ(driver().used_index(), 2);
  EXPECT_FALSE(m_irq_level);
  post_reads(1);
  driver().kick();
  EXPECT_EQ(driver().used_index(), 3);
  EXPECT_TRUE(m_irq_level);
  EXPECT_EQ(transport().statistics().interrupts_raised, 1u);

  // used_event left behind at 2: no more interrupts until the driver moves it.
  driver().write32(mmio::kInterruptAcknowledge, virtio::kInterruptUsedBuffer);
  post_reads(2);
  driver().kick();
  EXPECT_FALSE(m_irq_level);
  driver().set_used_event(5);
  post_reads(1);
  driver().kick();
  EXPECT_TRUE(m_irq_level);
  EXPECT_EQ(transport().statistics().interrupts_raised, 2u);
}

TEST_F(VirtioBlkEventIndexTest, PublishesAvailEventForTheNextNotification) {
  post_reads(3);
  driver().kick();
  EXPECT_EQ(driver().available_event(), 3);
  post_reads(2);
  driver().kick();
  EXPECT_EQ(driver().available_event(), 5);
}

TEST_F(VirtioBlkEventIndexTest, IgnoresTheNoInterruptFlag) {
  driver().set_available_flags(virtio::kAvailableNoInterrupt);
  driver().set_used_event(0);
  post_reads(1);
  driver().kick();
  EXPECT_TRUE(m_irq_level);
}

TEST_F(VirtioBlkTest, UnknownTypesAreUnsupported) {
  const std::uint64_t data = driver().allocate(512);
  const PostedRequest request = driver().post_block(99, 0, {{data, 512, true}});
  snapshot();
  driver().kick();
  expect_refused(request, virtio::kBlockStatusUnsupported);
  EXPECT_EQ(m_blk->statistics().unsupported_requests, 1u);
  EXPECT_EQ(m_blk->statistics().io_errors, 0u);
  EXPECT_EQ(last_io_error(), std::error_code{});

  const PostedRequest discard = driver().post_block(11, 0, {});  // VIRTIO_BLK_T_DISCARD
  driver().kick();
  EXPECT_EQ(status_byte(discard), virtio::kBlockStatusUnsupported);
}

TEST_F(VirtioBlkTest, TheLastSectorIsInRange) {
  const std::uint64_t data = driver().allocate_filled(512, 4);
  const PostedRequest request =
      driver().post_block(virtio::kBlockRequestOut, kDiskSectors - 1, {{data, 512, false}});
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(m_disk->sector_bytes(kDiskSectors - 1, 1), guest_bytes(data, 512));
}

// A request the device answers with VIRTIO_BLK_S_IOERR, and why.
struct RefusedRequest {
  const char* name;
  std::uint32_t type;
  std::uint64_t sector;
  std::vector<std::pair<std::uint32_t, bool>> data;  // each buffer's length, device-writable
  VirtioBlkError reason;
  VirtioBlkOptions options = {};
  bool read_only = false;
};

void PrintTo(const RefusedRequest& request, std::ostream* out) {
  *out << request.name;
}

class VirtioBlkRefusedTest : public VirtioBlkTest,
                             public ::testing::WithParamInterface<RefusedRequest> {};

// Nothing moves, the used element reports the device-writable bytes, and the
// device goes on serving requests.
TEST_P(VirtioBlkRefusedTest, IsAnIoErrorThatTouchesNothing) {
  const RefusedRequest& refused = GetParam();
  start(refused.options, refused.read_only);
  initialize(kBlockDriverFeatures | (refused.read_only ? virtio::kBlockFeatureReadOnly : 0));
  std::vector<Segment> data;
  std::uint32_t writable_bytes = 1;  // the status byte
  for (const auto& [length, writable] : refused.data) {
    data.push_back({driver().allocate_filled(length, 9), length, writable});
    if (writable) writable_bytes += length;
  }
  const PostedRequest request = driver().post_block(refused.type, refused.sector, data);
  snapshot();
  driver().kick();
  expect_refused(request, virtio::kBlockStatusIoError, refused.reason);
  EXPECT_EQ(driver().used(0).length, writable_bytes);
  EXPECT_EQ(m_disk->flushes(), 0);

  const PostedRequest read = driver().post_read();
  driver().kick();
  EXPECT_EQ(status_byte(read), virtio::kBlockStatusOk);
}

constexpr std::uint32_t kIn = virtio::kBlockRequestIn;
constexpr std::uint32_t kOut = virtio::kBlockRequestOut;

INSTANTIATE_TEST_SUITE_P(
    Requests, VirtioBlkRefusedTest,
    ::testing::Values(
        RefusedRequest{
            "WriteWithDeviceWritableData", kOut, 0, {{512, true}}, VirtioBlkError::kBadBuffers},
        RefusedRequest{
            "ReadWithDeviceReadableData", kIn, 0, {{512, false}}, VirtioBlkError::kBadBuffers},
        RefusedRequest{"FlushWithData",
                       virtio::kBlockRequestFlush,
                       0,
                       {{512, true}},
                       VirtioBlkError::kBadBuffers},
        RefusedRequest{"PartialSector", kOut, 0, {{513, false}}, VirtioBlkError::kPartialSector},
        RefusedRequest{"SegmentLargerThanSizeMax",
                       kOut,
                       0,
                       {{8192, false}},
                       VirtioBlkError::kOverSegmentLimit,
                       {.segment_size_maximum = 4096}},
        RefusedRequest{"MoreSegmentsThanSegMax",
                       kIn,
                       0,
                       {{512, true}, {512, true}, {512, true}},
                       VirtioBlkError::kOverSegmentLimit,
                       {.segment_maximum = 2}},
        RefusedRequest{"WriteToAReadOnlyDisk",
                       kOut,
                       0,
                       {{512, false}},
                       VirtioBlkError::kReadOnly,
                       {},
                       /*read_only=*/true},
        // Past the end of the disk, by a sector, from the sector after the
        // last, and where sector * 512 would wrap to a small offset.
        RefusedRequest{"ReadPastTheLastSector",
                       kIn,
                       kDiskSectors - 1,
                       {{1024, true}},
                       VirtioBlkError::kOutOfRange},
        RefusedRequest{"WritePastTheLastSector",
                       kOut,
                       kDiskSectors - 1,
                       {{1024, false}},
                       VirtioBlkError::kOutOfRange},
        RefusedRequest{"ReadAfterTheLastSector",
                       kIn,
                       kDiskSectors,
                       {{512, true}},
                       VirtioBlkError::kOutOfRange},
        RefusedRequest{"WriteAfterTheLastSector",
                       kOut,
                       kDiskSectors,
                       {{512, false}},
                       VirtioBlkError::kOutOfRange},
        RefusedRequest{"WriteAtAWrappingOffset",
                       kOut,
                       1ULL << 55,
                       {{512, false}},
                       VirtioBlkError::kOutOfRange},
        RefusedRequest{"ReadOfTheLastPossibleSector",
                       kIn,
                       std::numeric_limits<std::uint64_t>::max(),
                       {{512, true}},
                       VirtioBlkError::kOutOfRange}),
    [](const ::testing::TestParamInfo<RefusedRequest>& parameter) { return parameter.param.name; });

TEST_F(VirtioBlkTest, SizeMaxBindsOnlyADriverThatAcceptedIt) {
  start({.segment_size_maximum = 4096});
  initialize(kBlockDriverFeatures & ~virtio::kBlockFeatureSizeMax);
  const std::uint64_t data = driver().allocate_filled(8192, 6);
  const PostedRequest request =
      driver().post_block(virtio::kBlockRequestOut, 0, {{data, 8192, false}});
  driver().kick();
  EXPECT_EQ(status_byte(request), virtio::kBlockStatusOk);
  EXPECT_EQ(m_disk->sector_bytes(0, 16), guest_bytes(data, 8192));
}

TEST_F(VirtioBlkTest, BackendFailuresAreIoErrorsOfTheirKind) {
  m_disk->set_failing(true);
  const std::uint64_t data = driver().allocate_filled(512, 8);
  const PostedRequest write =
      driver().post_block(virtio::kBlockRequestOut, 0, {{data, 512, false}});
  snapshot();
  driver().kick();
  expect_refused(write, virtio::kBlockStatusIoError, DiskError::kWriteFailed);

  const PostedRequest flush = driver().post_block(virtio::kBlockRequestFlush, 0, {});
  driver().kick();
  EXPECT_EQ(status_byte(flush), virtio::kBlockStatusIoError);
  EXPECT_EQ(last_io_error(), DiskError::kFlushFailed);

  const PostedRequest read = driver().post_block(virtio::kBlockRequestIn, 0, {{data, 512, true}});
  driver().kick();
  EXPECT_EQ(status_byte(read), virtio::kBlockStatusIoError);
  EXPECT_EQ(last_io_error(), DiskError::kReadFailed);
  // What failed, for the person reading the log.
  EXPECT_NE(m_blk->last_io_error()->message.find("read request: the disk failed: injected"),
            std::string::npos);
  EXPECT_EQ(m_blk->statistics().io_errors, 3u);
}

}  // namespace
}  // namespace vmlab::devices::testing
