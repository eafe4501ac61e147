// Which monitor stub a vCPU exit came from (vcpu_state.hpp, trapping_stub),
// with a kvm_run filled in by hand: no KVM.
#include "vmlab/monitor/vcpu_state.hpp"

#include <gtest/gtest.h>

#include <linux/kvm.h>

#include <cstdint>

#include "vmlab/monitor/monitor_region.hpp"

namespace vmlab::monitor {
namespace {

// The exit of an `out` to `port` at CPL `cpl`, RIP just past it.
struct PortExit {
  PortExit(std::uint16_t port, std::uint8_t cpl, GuestVirtAddr rip_after_out)
      : exit(exits::PortOut{IoPort(port), 1, 1, {}}) {
    run.s.regs.sregs.cs.dpl = cpl;
    run.s.regs.regs.rip = rip_after_out.value();
  }
  VcpuExit exit;
  kvm_run run{};
};

constexpr std::uint64_t kOutLength = 2;  // out imm8, al

TEST(TrappingStub, NamesTheVectorOfTheStubThatWroteThePort) {
  const PortExit trap(kMonitorPort, 0, monitor_virtual(kStubsOffset + 14 * kStubSize + kOutLength));
  auto hit = trapping_stub(trap.exit, trap.run);
  ASSERT_TRUE(hit.ok()) << hit.error().message;
  ASSERT_TRUE(hit->has_value());
  EXPECT_FALSE((*hit)->syscall);
  EXPECT_EQ((*hit)->vector, 14);
}

TEST(TrappingStub, LeavesOtherExitsToTheCore) {
  const PortExit device(0x3f8, 0, monitor_virtual(kStubsOffset + kOutLength));
  auto other_port = trapping_stub(device.exit, device.run);
  ASSERT_TRUE(other_port.ok());
  EXPECT_FALSE(other_port->has_value());
  // The guest at CPL3 writing the monitor port is a device access like any other.
  const PortExit guest(kMonitorPort, 3, GuestVirtAddr(0x401002));
  auto from_guest = trapping_stub(guest.exit, guest.run);
  ASSERT_TRUE(from_guest.ok());
  EXPECT_FALSE(from_guest->has_value());
}

TEST(TrappingStub, ACpl0WriteOutsideTheStubsIsAnError) {
  const PortExit stray(kMonitorPort, 0, monitor_virtual(kStackOffset));
  auto hit = trapping_stub(stray.exit, stray.run);
  ASSERT_FALSE(hit.ok());
  EXPECT_EQ(hit.error().kind, MonitorError::kStrayMonitorPortWrite);
}

}  // namespace
}  // namespace vmlab::monitor
