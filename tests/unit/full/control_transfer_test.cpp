// Control transfers for the instruction emulator (modes/full/src/
// control_transfer.cpp): hlt, far returns, iretq, int3 and int n, syscall
// and sysret, and the segment checks they make.
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

TEST_F(EmulatorTest, HltHaltsAfterAdvancing) {
  const Emulation emulation = run({0xf4});
  EXPECT_EQ(emulation.kind, EmulationKind::Halt);
  EXPECT_TRUE(cpu.halted);
  EXPECT_EQ(registers.rip, kCode + 1);
}

TEST_F(EmulatorTest, HltInUserModeIsGeneralProtection) {
  enter_user_mode();
  expect_general_protection(run({0xf4}));
  EXPECT_FALSE(cpu.halted);
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(EmulatorTest, FarReturnReloadsCodeSegmentAsGdtLoadDoes) {
  // gdt_load: push $0x08; push %rax; lretq.
  cpu.cs = 0x33;
  memory.put_u64(kStack, 0x102345);
  memory.put_u64(kStack + 8, fakes::kKernelCodeSelector);
  const Emulation emulation = run({0x48, 0xcb});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "ret far");
  EXPECT_EQ(registers.rip, 0x102345u);
  EXPECT_EQ(cpu.cs, fakes::kKernelCodeSelector);
  EXPECT_EQ(registers.rsp, kStack + 16);
  EXPECT_EQ(cpu.cpl, 0);
}

TEST_F(EmulatorTest, FarReturnToOuterLevelPopsTheStackToo) {
  memory.put_u64(kStack, 0x401000);
  memory.put_u64(kStack + 8, fakes::kUserCodeSelector);
  memory.put_u64(kStack + 16, 0x7ff000);
  memory.put_u64(kStack + 24, fakes::kUserDataSelector);
  run({0x48, 0xcb});
  EXPECT_EQ(cpu.cpl, 3);
  EXPECT_EQ(registers.rsp, 0x7ff000u);
  EXPECT_EQ(cpu.ss, fakes::kUserDataSelector);
}

TEST_F(EmulatorTest, FarReturnToOuterLevelMakesKernelDataSegmentsNull) {
  cpu.ds = {fakes::kKernelDataSelector, 0, true};
  cpu.es = {fakes::kUserDataSelector, 3, true};
  memory.put_u64(kStack, 0x401000);
  memory.put_u64(kStack + 8, fakes::kUserCodeSelector);
  memory.put_u64(kStack + 16, 0x7ff000);
  memory.put_u64(kStack + 24, fakes::kUserDataSelector);
  run({0x48, 0xcb});
  ASSERT_EQ(cpu.cpl, 3);
  EXPECT_EQ(cpu.ds.selector, 0);
  EXPECT_EQ(cpu.es.selector, fakes::kUserDataSelector);
}

TEST_F(EmulatorTest, FarReturnToMorePrivilegedCodeIsGeneralProtection) {
  enter_user_mode();
  memory.put_u64(kStack, 0x102345);
  memory.put_u64(kStack + 8, fakes::kKernelCodeSelector);
  expect_general_protection(run({0x48, 0xcb}), 0x08);
  EXPECT_EQ(cpu.cpl, 3);
  EXPECT_EQ(registers.rip, kCode);
}

class InterruptReturnTest : public EmulatorTest {
 protected:
  void push_frame(std::uint64_t rip, std::uint64_t cs, std::uint64_t rflags, std::uint64_t rsp,
                  std::uint64_t ss) {
    memory.put_u64(kStack, rip);
    memory.put_u64(kStack + 8, cs);
    memory.put_u64(kStack + 16, rflags);
    memory.put_u64(kStack + 24, rsp);
    memory.put_u64(kStack + 32, ss);
  }
};

TEST_F(InterruptReturnTest, ToKernelRestoresFrameAndInterruptFlag) {
  push_frame(0x104000, fakes::kKernelCodeSelector, 0x3246, 0x8000, 0);
  cpu.interrupt_flag = false;
  const Emulation emulation = run({0x48, 0xcf});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "iretq");
  EXPECT_EQ(registers.rip, 0x104000u);
  EXPECT_EQ(registers.rsp, 0x8000u);
  EXPECT_EQ(cpu.cs, fakes::kKernelCodeSelector);
  EXPECT_EQ(cpu.ss, 0);  // null SS at CPL0: allowed in 64-bit mode
  EXPECT_EQ(cpu.cpl, 0);
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 3);  // CPL0 loads IOPL
  EXPECT_EQ(registers.rflags, 0x3246u);
}

TEST_F(InterruptReturnTest, ToUserSwitchesToVirtualUserMode) {
  // user_enter: SS, RSP, RFLAGS 0x202, CS, RIP.
  push_frame(0x400000, fakes::kUserCodeSelector, 0x202, 0x7fff000, fakes::kUserDataSelector);
  run({0x48, 0xcf});
  EXPECT_EQ(cpu.cpl, 3);
  EXPECT_EQ(cpu.cs, fakes::kUserCodeSelector);
  EXPECT_EQ(cpu.ss, fakes::kUserDataSelector);
  EXPECT_EQ(registers.rip, 0x400000u);
  EXPECT_EQ(registers.rsp, 0x7fff000u);
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 0);
}

// gdt_load leaves DS and ES holding the DPL0 kernel data segment, FS and GS
// null. Returning to CPL3 makes DS and ES null (Intel SDM vol. 2A IRET,
// "RETURN-TO-OUTER-PRIVILEGE-LEVEL"); a DPL3 data segment, a null selector
// and a conforming code segment stay.
TEST_F(InterruptReturnTest, ToUserMakesKernelDataSegmentsNull) {
  memory.put_u64(kGdt + 0x38, 0x00af9e000000ffffull);  // DPL0 conforming execute/read code
  cpu.gdtr.limit = 0x3f;
  registers.rax = 0x38;
  run({0x8e, 0xe8});  // mov gs, ax: a readable code segment may be loaded
  cpu.ds = {fakes::kKernelDataSelector, 0, true};
  cpu.es = {fakes::kKernelDataSelector, 0, true};
  cpu.fs = {fakes::kUserDataSelector, 3, true};
  cpu.fs_base = 0x7000'0000;
  push_frame(0x400000, fakes::kUserCodeSelector, 0x202, 0x7fff000, fakes::kUserDataSelector);
  run({0x48, 0xcf});
  ASSERT_EQ(cpu.cpl, 3);
  EXPECT_EQ(cpu.ds.selector, 0);
  EXPECT_EQ(cpu.es.selector, 0);
  EXPECT_EQ(cpu.fs.selector, fakes::kUserDataSelector);
  EXPECT_EQ(cpu.fs_base, 0x7000'0000u);
  EXPECT_EQ(cpu.gs.selector, 0x38);
  // And mov from DS now reads the null selector, as on the CPU.
  registers.rax = ~std::uint64_t{0};
  run({0x8c, 0xd8});
  EXPECT_EQ(registers.rax, 0u);
}

TEST_F(InterruptReturnTest, ToTheSameLevelKeepsDataSegments) {
  cpu.ds = {fakes::kKernelDataSelector, 0, true};
  push_frame(0x104000, fakes::kKernelCodeSelector, 0x2, 0x8000, fakes::kKernelDataSelector);
  run({0x48, 0xcf});
  EXPECT_EQ(cpu.ds.selector, fakes::kKernelDataSelector);
}

TEST_F(InterruptReturnTest, SanitizesRflags) {
  push_frame(0x104000, fakes::kKernelCodeSelector, 0x30000 | 0x1, 0x8000,
             fakes::kKernelDataSelector);  // RF, VM, CF; bit 1 clear
  run({0x48, 0xcf});
  EXPECT_EQ(registers.rflags, 0x3u);
}

TEST_F(InterruptReturnTest, UserModeCannotChangeIoplOrInterruptFlag) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  memory.put_u64(kStack, 0x400100);
  push_frame(0x400100, fakes::kUserCodeSelector, 0x3002, 0x7ff000, fakes::kUserDataSelector);
  EXPECT_EQ(run({0x48, 0xcf}).kind, EmulationKind::Emulated);
  EXPECT_EQ(cpu.iopl, 0);
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(registers.rip, 0x400100u);
}

TEST_F(InterruptReturnTest, UserModeToKernelIsGeneralProtection) {
  enter_user_mode();
  push_frame(0x104000, fakes::kKernelCodeSelector, 0x2, 0x8000, 0);
  expect_general_protection(run({0x48, 0xcf}), 0x08);
  EXPECT_EQ(cpu.cpl, 3);
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(InterruptReturnTest, FaultsReadingOrCheckingTheFrame) {
  push_frame(0x0000800000000000ull, fakes::kKernelCodeSelector, 0x2, 0x8000, 0);
  expect_general_protection(run({0x48, 0xcf}));  // non-canonical RIP

  push_frame(0x104000, fakes::kUserCodeSelector, 0x2, 0x8000, 0);
  expect_general_protection(run({0x48, 0xcf}));  // null SS to CPL3

  push_frame(0x104000, fakes::kUserCodeSelector, 0x2, 0x8000, fakes::kKernelDataSelector);
  expect_general_protection(run({0x48, 0xcf}), 0x10);  // SS.RPL != CS.RPL

  memory.put_bytes(kGdt + 0x20 + 5, {0x7a});  // user code not present, as FullMode marks it
  push_frame(0x400000, fakes::kUserCodeSelector, 0x202, 0x7ff000, fakes::kUserDataSelector);
  const Emulation not_present = run({0x48, 0xcf});
  EXPECT_EQ(not_present.event.vector, kVectorSegmentNotPresent);
  EXPECT_EQ(not_present.event.error_code, 0x20u);

  registers.rflags |= kRflagsNestedTask;
  expect_general_protection(run({0x48, 0xcf}));
  registers.rflags &= ~kRflagsNestedTask;

  registers.rsp = kData + 0x1000 - 16;
  memory.unmap_page(kData + 0x1000);
  const Emulation unmapped = run({0x48, 0xcf});
  EXPECT_EQ(unmapped.event.vector, kVectorPageFault);
  EXPECT_EQ(unmapped.event.fault_address, GuestVirtAddr(kData + 0x1000));
  EXPECT_EQ(cpu.cpl, 0);
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(InterruptReturnTest, StandaloneEntryPointDecodesToo) {
  push_frame(0x104000, fakes::kKernelCodeSelector, 0x2, 0x8000, 0);
  place({0x48, 0xcf});
  EXPECT_EQ(emulate_iretq(registers, cpu, memory).kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rip, 0x104000u);
  place({0xfa});
  EXPECT_EQ(emulate_iretq(registers, cpu, memory).kind, EmulationKind::Unsupported);
}

TEST_F(EmulatorTest, SoftwareInterruptsAreReflectedAsSoftwareEvents) {
  Emulation emulation = run({0xcc});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorBreakpoint);
  EXPECT_EQ(emulation.event.source, EventSource::Software);
  EXPECT_EQ(emulation.event.instruction_length, 1);
  EXPECT_FALSE(emulation.event.error_code);
  emulation = run({0xcd, 0x80});
  EXPECT_EQ(emulation.event.vector, 0x80);
  EXPECT_EQ(emulation.event.instruction_length, 2);
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(EmulatorTest, SyscallFollowsTheVirtualSce) {
  enter_user_mode();
  cpu.efer = 0x500;
  Emulation emulation = run({0x0f, 0x05});
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorInvalidOpcode);
  cpu.efer = 0x501;
  cpu.lstar = 0x103000;
  cpu.star = 0x0013'0008'0000'0000ull;
  emulation = run({0x0f, 0x05});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rcx, kCode + 2);
  EXPECT_EQ(registers.rip, 0x103000u);
  EXPECT_EQ(cpu.cpl, 0);
}

TEST_F(EmulatorTest, SysretqReturnsToUserMode) {
  cpu.star = 0x0013'0008'0000'0000ull;
  registers.rcx = 0x400123;
  registers.r11 = 0x3202 | 0x10000;  // IOPL 3, IF, RF
  EXPECT_EQ(run({0x48, 0x0f, 0x07}).kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rip, 0x400123u);
  EXPECT_EQ(cpu.cpl, 3);
  EXPECT_EQ(cpu.cs, 0x23);
  EXPECT_EQ(cpu.ss, 0x1b);
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 3);
  EXPECT_EQ(registers.rflags & kRflagsResume, 0u);
  expect_general_protection(run({0x48, 0x0f, 0x07}));  // now at CPL3
}

}  // namespace
}  // namespace vmlab::full
