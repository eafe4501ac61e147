#include "vmlab/guest_memory.hpp"

#include <gtest/gtest.h>

namespace vmlab {
namespace {

// The kind of a failed call, or no error code for one that succeeded.
template <typename T>
std::error_code kind_of(const Result<T>& result) {
  return result.ok() ? std::error_code() : result.error().kind;
}

TEST(GuestMemory, RejectsBadSizes) {
  EXPECT_EQ(kind_of(GuestMemory::create(0)), GuestMemoryError::kInvalidSize);
  EXPECT_EQ(kind_of(GuestMemory::create(3 * MiB)), GuestMemoryError::kInvalidSize);
  EXPECT_TRUE(GuestMemory::create(2 * MiB).ok());
}

TEST(GuestMemory, ReadsBackWhatWasWritten) {
  auto memory = GuestMemory::create(2 * MiB);
  ASSERT_TRUE(memory.ok());
  ASSERT_TRUE(memory->write_object(GuestPhysAddr(0x1234), std::uint64_t{0x1122334455667788}).ok());
  auto value = memory->read_object<std::uint64_t>(GuestPhysAddr(0x1234));
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, 0x1122334455667788u);
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(0x1234)), 0x88);
}

TEST(GuestMemory, BoundsAreChecked) {
  auto memory = GuestMemory::create(2 * MiB);
  ASSERT_TRUE(memory.ok());
  const std::uint64_t end = 2 * MiB;
  EXPECT_TRUE(memory->write_object(GuestPhysAddr(end - 8), std::uint64_t{1}).ok());
  auto past = memory->write_object(GuestPhysAddr(end - 7), std::uint64_t{1});
  EXPECT_EQ(kind_of(past), GuestMemoryError::kOutOfRange);
  EXPECT_EQ(kind_of(memory->read_object<std::uint32_t>(GuestPhysAddr(end))),
            GuestMemoryError::kOutOfRange);
  // An address near 2^64 must not wrap around the check.
  EXPECT_EQ(kind_of(memory->read_object<std::uint32_t>(GuestPhysAddr(~0ULL - 1))),
            GuestMemoryError::kOutOfRange);
  EXPECT_EQ(kind_of(memory->fill(GuestPhysAddr(end - 4), 0, 8)), GuestMemoryError::kOutOfRange);
  EXPECT_TRUE(memory->fill(GuestPhysAddr(0), 0x5a, end).ok());
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(end - 1)), 0x5a);
}

TEST(GuestMemory, MoveTransfersOwnership) {
  auto memory = GuestMemory::create(2 * MiB);
  ASSERT_TRUE(memory.ok());
  GuestMemory moved = std::move(*memory);
  EXPECT_EQ(moved.size(), 2 * MiB);
  EXPECT_EQ(memory->size(), 0u);
  EXPECT_EQ(kind_of(memory->read_object<std::uint8_t>(GuestPhysAddr(0))),
            GuestMemoryError::kOutOfRange);
}

}  // namespace
}  // namespace vmlab
