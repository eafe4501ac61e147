// The trap frame every software technique reads off the monitor stack (SDM
// vol. 3A, figure 6-9), with the monitor region in plain memory: no KVM.
#include "vmlab/monitor/trap_frame.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

#include "monitor_memory.hpp"
#include "vmlab/monitor/event_delivery.hpp"
#include "vmlab/monitor/guest_context.hpp"
#include "vmlab/monitor/monitor_region.hpp"

namespace vmlab::monitor {
namespace {

class TrapFrameTest : public testing::MonitorMemoryTest {
 protected:
  // Pushes `words` as the CPU does, the last one at the top of the stack,
  // and returns the stack pointer the stub would see.
  template <std::size_t N>
  GuestVirtAddr push(const std::array<std::uint64_t, N>& words) {
    const GuestVirtAddr rsp = monitor_virtual(kStackTopOffset - N * sizeof(std::uint64_t));
    EXPECT_TRUE(m_physical.write_object(monitor_physical(kStackTopOffset - N * 8), words).ok());
    return rsp;
  }
};

constexpr std::uint64_t kUserCs = kUserCodeSelector;  // RPL 3
constexpr std::uint64_t kUserSs = kUserDataSelector;

TEST_F(TrapFrameTest, ReadsAFrameWithAnErrorCode) {
  const auto rsp =
      push(std::array<std::uint64_t, 6>{0x6, 0x401000, kUserCs, 0x202, 0x7ff000, kUserSs});
  auto frame = read_trap_frame(m_physical, kVectorPageFault, rsp);
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_EQ(frame->vector, kVectorPageFault);
  ASSERT_TRUE(frame->error_code.has_value());
  EXPECT_EQ(*frame->error_code, 0x6u);
  EXPECT_EQ(frame->rip, GuestVirtAddr(0x401000));
  EXPECT_EQ(frame->cs, kUserCs);
  EXPECT_EQ(frame->rflags, 0x202u);
  EXPECT_EQ(frame->rsp, GuestVirtAddr(0x7ff000));
  EXPECT_EQ(frame->ss, kUserSs);
  EXPECT_EQ(frame->real_cpl(), 3);
}

TEST_F(TrapFrameTest, ReadsAFrameWithoutAnErrorCode) {
  const auto rsp = push(std::array<std::uint64_t, 5>{0x402000, kUserCs, 0x2, 0x7fe000, kUserSs});
  auto frame = read_trap_frame(m_physical, kVectorInvalidOpcode, rsp);
  ASSERT_TRUE(frame.ok()) << frame.error().message;
  EXPECT_FALSE(frame->error_code.has_value());
  EXPECT_EQ(frame->rip, GuestVirtAddr(0x402000));
  EXPECT_EQ(frame->rsp, GuestVirtAddr(0x7fe000));
}

TEST_F(TrapFrameTest, RefusesAStackPointerOutsideTheMonitorStack) {
  for (const GuestVirtAddr rsp : {GuestVirtAddr(0x7ff000), monitor_virtual(kStackOffset - 8),
                                  monitor_virtual(kFaultStackTopOffset - 16)}) {
    auto frame = read_trap_frame(m_physical, kVectorGeneralProtection, rsp);
    ASSERT_FALSE(frame.ok()) << std::hex << rsp.value();
    EXPECT_EQ(frame.error().kind, MonitorError::kBadTrapFrame);
  }
}

TEST_F(TrapFrameTest, ATrapFromCpl0IsTheMonitorsOwnFault) {
  const auto rsp = push(std::array<std::uint64_t, 6>{
      0, monitor_virtual(kStubsOffset).value(), kMonitorCodeSelector, 0x2,
      monitor_virtual(kStackTopOffset).value(), kMonitorDataSelector});
  auto frame = read_trap_frame(m_physical, kVectorGeneralProtection, rsp);
  ASSERT_FALSE(frame.ok());
  EXPECT_EQ(frame.error().kind, MonitorError::kMonitorFault);
  EXPECT_NE(frame.error().message.find("exception 13"), std::string::npos) << frame.error().message;
}

TEST(SyscallFetchFault, IsTheUserReadFaultAtTheSyscallStub) {
  const GuestVirtAddr stub = monitor_virtual(kSyscallStubOffset);
  TrapFrame frame;
  frame.vector = kVectorPageFault;
  frame.rip = stub;
  frame.cs = kUserCodeSelector;
  frame.error_code = kPageFaultUser | kPageFaultPresent | kPageFaultFetch;
  EXPECT_TRUE(is_syscall_fetch_fault(frame, stub));
  EXPECT_FALSE(is_syscall_fetch_fault(frame, stub + 1)) << "CR2 elsewhere";
  TrapFrame write = frame;
  write.error_code = kPageFaultUser | kPageFaultWrite;
  EXPECT_FALSE(is_syscall_fetch_fault(write, stub)) << "a write to the stub is a real fault";
  TrapFrame supervisor = frame;
  supervisor.error_code = kPageFaultPresent;
  EXPECT_FALSE(is_syscall_fetch_fault(supervisor, stub));
  TrapFrame elsewhere = frame;
  elsewhere.rip = stub + 8;
  EXPECT_FALSE(is_syscall_fetch_fault(elsewhere, stub)) << "RIP must be the stub";
  TrapFrame general = frame;
  general.vector = kVectorGeneralProtection;
  EXPECT_FALSE(is_syscall_fetch_fault(general, stub));
}

}  // namespace
}  // namespace vmlab::monitor
