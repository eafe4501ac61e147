#include "vmlab/monitor/monitor_region.hpp"

#include <gtest/gtest.h>

#include "monitor_memory.hpp"

namespace vmlab::monitor {
namespace {

class MonitorRegionTest : public testing::MonitorMemoryTest {
 protected:
  void SetUp() override {
    MonitorMemoryTest::SetUp();
    ASSERT_TRUE(build_monitor_region(m_physical).ok());
  }
  std::uint64_t read64(std::uint64_t offset) {
    return *m_region->read_object<std::uint64_t>(GuestPhysAddr(offset));
  }
};

TEST_F(MonitorRegionTest, GdtHasTheDocumentedSelectors) {
  auto dpl = [&](std::uint16_t selector) {
    return (read64(kGdtOffset + (selector & ~7u)) >> 45) & 3;
  };
  auto long_mode = [&](std::uint16_t selector) {
    return (read64(kGdtOffset + (selector & ~7u)) >> 53) & 1;
  };
  EXPECT_EQ(dpl(kMonitorCodeSelector), 0u);
  EXPECT_EQ(long_mode(kMonitorCodeSelector), 1u);
  EXPECT_EQ(dpl(kUserCodeSelector), 3u);
  EXPECT_EQ(long_mode(kUserCodeSelector), 1u);
  EXPECT_EQ(dpl(kGuestKernelCodeSelector), 3u);
  EXPECT_EQ(dpl(kGuestKernelDataSelector), 3u);
  // The TSS descriptor points at the TSS's monitor virtual address.
  const std::uint64_t low = read64(kGdtOffset + kTssSelector);
  const std::uint64_t high = read64(kGdtOffset + kTssSelector + 8);
  const std::uint64_t base = ((low >> 16) & 0xffffff) | (((low >> 56) & 0xff) << 24) | (high << 32);
  EXPECT_EQ(base, monitor_virtual(kTssOffset).value());
  EXPECT_EQ((low >> 40) & 0xf, 9u) << "available 64-bit TSS";
}

TEST_F(MonitorRegionTest, IdtGatesPointAtTheirStubs) {
  for (unsigned vector : {0u, 8u, 13u, 14u, 255u}) {
    const std::uint64_t low = read64(kIdtOffset + vector * 16);
    const std::uint64_t high = read64(kIdtOffset + vector * 16 + 8);
    const std::uint64_t handler = (low & 0xffff) | (((low >> 48) & 0xffff) << 16) | (high << 32);
    EXPECT_EQ(handler, monitor_virtual(kStubsOffset + vector * kStubSize).value());
    EXPECT_EQ((low >> 16) & 0xffff, kMonitorCodeSelector);
    EXPECT_EQ((low >> 40) & 0xff, 0x8eu) << "present, DPL0, interrupt gate";
    EXPECT_EQ((low >> 32) & 7, vector == 8 ? 1u : 0u) << "#DF on its own stack";
  }
}

TEST_F(MonitorRegionTest, StubsAreOneOutAndTheirAddressesDecode) {
  const std::uint64_t stub = kStubsOffset + 14 * kStubSize;
  EXPECT_EQ(*m_region->read_object<std::uint8_t>(GuestPhysAddr(stub)), 0xe6);  // out imm8, al
  EXPECT_EQ(*m_region->read_object<std::uint8_t>(GuestPhysAddr(stub + 1)), kMonitorPort);
  auto hit = stub_at(monitor_virtual(stub) + 2);
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->syscall);
  EXPECT_EQ(hit->vector, 14);
  auto syscall = stub_at(monitor_virtual(kSyscallStubOffset) + 2);
  ASSERT_TRUE(syscall.has_value());
  EXPECT_TRUE(syscall->syscall);
  EXPECT_FALSE(stub_at(monitor_virtual(stub) + 3).has_value());
  EXPECT_FALSE(stub_at(GuestVirtAddr(0x100002)).has_value());
  // The SYSCALL stub follows stub 255; nothing follows it.
  static_assert(kSyscallStubOffset == kStubsOffset + 256 * kStubSize);
  EXPECT_FALSE(stub_at(monitor_virtual(kSyscallStubOffset + kStubSize) + 2).has_value());
}

TEST_F(MonitorRegionTest, UserSegmentsCanBeMarkedNotPresent) {
  const std::uint64_t present = 1ULL << 47;
  ASSERT_TRUE(set_user_segments_present(m_physical, false).ok());
  EXPECT_EQ(read64(kGdtOffset + (kUserCodeSelector & ~7u)) & present, 0u);
  EXPECT_EQ(read64(kGdtOffset + (kUserDataSelector & ~7u)) & present, 0u);
  EXPECT_NE(read64(kGdtOffset + (kGuestKernelCodeSelector & ~7u)) & present, 0u);
  ASSERT_TRUE(set_user_segments_present(m_physical, true).ok());
  EXPECT_NE(read64(kGdtOffset + (kUserCodeSelector & ~7u)) & present, 0u);
}

TEST(MonitorRegion, ErrorCodeVectors) {
  EXPECT_TRUE(vector_has_error_code(13));
  EXPECT_TRUE(vector_has_error_code(14));
  EXPECT_TRUE(vector_has_error_code(8));
  EXPECT_FALSE(vector_has_error_code(3));
  EXPECT_FALSE(vector_has_error_code(32));
}

}  // namespace
}  // namespace vmlab::monitor
