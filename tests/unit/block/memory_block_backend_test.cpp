#include <vmlab/devices/memory_block_backend.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

namespace vmlab::devices {
namespace {

// What went wrong, or no kind at all when nothing did.
std::error_code error_kind(const Status& status) {
  return status ? std::error_code{} : status.error().kind;
}

TEST(MemoryBlockBackendTest, StartsZeroedWithItsSizeAndSerial) {
  MemoryBlockBackend disk(16, DiskAccess::ReadWrite, "test-serial");
  EXPECT_EQ(disk.size_bytes(), 16 * kSectorSize);
  EXPECT_EQ(disk.sector_count(), 16u);
  EXPECT_FALSE(disk.read_only());
  EXPECT_EQ(disk.serial(), "test-serial");
  for (const std::uint8_t byte : disk.contents())
    ASSERT_EQ(byte, 0);
}

TEST(MemoryBlockBackendTest, RoundTripsAndCounts) {
  MemoryBlockBackend disk(8);
  std::vector<std::uint8_t> data(2 * kSectorSize);
  for (std::size_t index = 0; index < data.size(); ++index)
    data[index] = static_cast<std::uint8_t>(index);
  ASSERT_TRUE(disk.write(3 * kSectorSize, data));
  EXPECT_EQ(disk.sector(3)[1], 1);
  std::vector<std::uint8_t> back(data.size());
  ASSERT_TRUE(disk.read(3 * kSectorSize, back));
  EXPECT_EQ(back, data);
  ASSERT_TRUE(disk.flush());
  EXPECT_EQ(disk.reads(), 1u);
  EXPECT_EQ(disk.writes(), 1u);
  EXPECT_EQ(disk.flushes(), 1u);
  EXPECT_EQ(disk.bytes_read(), data.size());
  EXPECT_EQ(disk.bytes_written(), data.size());
}

TEST(MemoryBlockBackendTest, RefusesRangesPastTheEnd) {
  MemoryBlockBackend disk(2);
  std::vector<std::uint8_t> buffer(kSectorSize, 0x77);
  EXPECT_EQ(error_kind(disk.read(kSectorSize + 1, buffer)), DiskError::kOutOfRange);
  EXPECT_EQ(error_kind(disk.write(2 * kSectorSize, buffer)), DiskError::kOutOfRange);
  EXPECT_EQ(error_kind(disk.read(UINT64_MAX, buffer)), DiskError::kOutOfRange);
  EXPECT_EQ(buffer, std::vector<std::uint8_t>(kSectorSize, 0x77));
  EXPECT_EQ(disk.writes(), 0u);
}

TEST(MemoryBlockBackendTest, ReadOnlyRefusesWrites) {
  MemoryBlockBackend disk(2, DiskAccess::ReadOnly);
  EXPECT_TRUE(disk.read_only());
  const std::vector<std::uint8_t> data(kSectorSize, 1);
  auto written = disk.write(0, data);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().kind, DiskError::kReadOnly);
  EXPECT_EQ(disk.sector(0)[0], 0);
}

TEST(MemoryBlockBackendTest, InjectedFailuresTransferNothing) {
  MemoryBlockBackend disk(4);
  disk.sector(1)[0] = 0x11;
  std::vector<std::uint8_t> buffer(kSectorSize, 0xee);

  disk.fail_reads(true);
  EXPECT_EQ(error_kind(disk.read(0, buffer)), DiskError::kReadFailed);
  disk.fail_reads(false);
  disk.fail_writes(true);
  EXPECT_EQ(error_kind(disk.write(0, buffer)), DiskError::kWriteFailed);
  disk.fail_writes(false);
  disk.fail_flushes(true);
  EXPECT_EQ(error_kind(disk.flush()), DiskError::kFlushFailed);
  EXPECT_EQ(disk.flush().error().system_errno, EIO);
  disk.fail_flushes(false);
  EXPECT_TRUE(disk.flush());

  disk.fail_sector(1);
  EXPECT_TRUE(disk.read(0, buffer));  // sector 0 only
  EXPECT_EQ(error_kind(disk.read(kSectorSize + 10, std::span(buffer).first(4))),
            DiskError::kReadFailed);
  std::vector<std::uint8_t> two(2 * kSectorSize, 0xee);
  EXPECT_EQ(error_kind(disk.read(0, two)), DiskError::kReadFailed);  // sectors 0 and 1
  EXPECT_EQ(two, std::vector<std::uint8_t>(2 * kSectorSize, 0xee));
  EXPECT_EQ(error_kind(disk.write(kSectorSize, buffer)), DiskError::kWriteFailed);
  EXPECT_EQ(disk.sector(1)[0], 0x11);
  disk.fail_sector(std::nullopt);
  EXPECT_TRUE(disk.read(kSectorSize, buffer));
  EXPECT_EQ(buffer[0], 0x11);
}

}  // namespace
}  // namespace vmlab::devices
