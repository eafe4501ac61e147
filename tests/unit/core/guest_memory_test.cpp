#include "vmlab/guest_memory.hpp"

#include <gtest/gtest.h>

namespace vmlab {
namespace {

TEST(GuestMemory, RejectsBadSizes) {
  EXPECT_FALSE(GuestMemory::create(0).ok());
  EXPECT_FALSE(GuestMemory::create(3 * MiB).ok());
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
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.error().message.find("outside guest RAM"), std::string::npos);
  EXPECT_FALSE(memory->read_object<std::uint32_t>(GuestPhysAddr(end)).ok());
  // An address near 2^64 must not wrap around the check.
  EXPECT_FALSE(memory->read_object<std::uint32_t>(GuestPhysAddr(~0ULL - 1)).ok());
  EXPECT_FALSE(memory->fill(GuestPhysAddr(end - 4), 0, 8).ok());
  EXPECT_TRUE(memory->fill(GuestPhysAddr(0), 0x5a, end).ok());
  EXPECT_EQ(*memory->read_object<std::uint8_t>(GuestPhysAddr(end - 1)), 0x5a);
}

TEST(GuestMemory, MoveTransfersOwnership) {
  auto memory = GuestMemory::create(2 * MiB);
  ASSERT_TRUE(memory.ok());
  GuestMemory moved = std::move(*memory);
  EXPECT_EQ(moved.size(), 2 * MiB);
  EXPECT_EQ(memory->size(), 0u);
  EXPECT_FALSE(memory->read_object<std::uint8_t>(GuestPhysAddr(0)).ok());
}

}  // namespace
}  // namespace vmlab
