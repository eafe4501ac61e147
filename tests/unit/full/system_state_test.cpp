// System state for the instruction emulator (modes/full/src/
// system_state.cpp): cli and sti, control and debug registers, descriptor
// tables, segment loads, MSRs, swapgs, invlpg and the counters, with their
// privilege checks (bytes as `objdump -d` of vmlab-guest.elf shows them).
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

TEST_F(EmulatorTest, CliClearsTheVirtualInterruptFlagAndAdvances) {
  cpu.interrupt_flag = true;
  registers.rflags = 0x202;
  const Emulation emulation = run({0xfa});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "cli");
  EXPECT_EQ(emulation.instruction_length, 1);
  EXPECT_FALSE(cpu.interrupt_flag);
  EXPECT_EQ(registers.rflags & kRflagsInterrupt, 0u);
  EXPECT_EQ(registers.rip, kCode + 1);
}

TEST_F(EmulatorTest, StiSetsTheInterruptFlagWithAShadowOnlyWhenItWasClear) {
  Emulation emulation = run({0xfb});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_TRUE(emulation.interrupt_shadow);
  EXPECT_EQ(registers.rip, kCode + 1);
  emulation = run({0xfb});
  EXPECT_FALSE(emulation.interrupt_shadow);
}

TEST_F(EmulatorTest, CliAndStiInUserModeNeedIopl) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  expect_general_protection(run({0xfa}));
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(registers.rip, kCode);
  cpu.iopl = 3;
  EXPECT_EQ(run({0xfa}).kind, EmulationKind::Emulated);
  EXPECT_FALSE(cpu.interrupt_flag);
}

TEST_F(EmulatorTest, MovToCr3NotifiesTheShadowPager) {
  cpu.cr3 = 0x1000;
  registers.rax = 0x7000;
  const Emulation emulation = run({0x0f, 0x22, 0xd8});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "mov cr3, rax");
  EXPECT_EQ(cpu.cr3, 0x7000u);
  ASSERT_EQ(services.cr3_writes.size(), 1u);
  EXPECT_EQ(services.cr3_writes[0], std::make_pair(std::uint64_t{0x1000}, std::uint64_t{0x7000}));
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(EmulatorTest, MovToCr3FromExtendedRegister) {
  registers.r9 = 0x9000;
  run({0x41, 0x0f, 0x22, 0xd9});
  EXPECT_EQ(cpu.cr3, 0x9000u);
}

TEST_F(EmulatorTest, MovToCr3WithReservedBitsIsGeneralProtection) {
  cpu.cr3 = 0x1000;
  registers.rax = 0x8000000000001000ull;  // bit 63 without CR4.PCIDE
  expect_general_protection(run({0x0f, 0x22, 0xd8}));
  registers.rax = 0x0010000000001000ull;  // bit 52
  expect_general_protection(run({0x0f, 0x22, 0xd8}));
  EXPECT_EQ(cpu.cr3, 0x1000u);
  EXPECT_TRUE(services.cr3_writes.empty());
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(EmulatorTest, MovToCr3NoInvalidateHintWithPcide) {
  cpu.cr4 |= 1u << 17;
  registers.rax = 0x8000000000002001ull;
  run({0x0f, 0x22, 0xd8});
  EXPECT_EQ(cpu.cr3, 0x2001u);
}

TEST_F(EmulatorTest, MovFromCr2AndCr0AndCr4AndCr8) {
  cpu.cr2 = 0xdeadbeef000;
  cpu.cr8 = 5;
  EXPECT_EQ(run({0x0f, 0x20, 0xd6}).mnemonic, "mov rsi, cr2");
  EXPECT_EQ(registers.rsi, 0xdeadbeef000u);
  run({0x0f, 0x20, 0xc0});
  EXPECT_EQ(registers.rax, cpu.cr0);
  run({0x0f, 0x20, 0xe1});
  EXPECT_EQ(registers.rcx, cpu.cr4);
  run({0x44, 0x0f, 0x20, 0xc2});
  EXPECT_EQ(registers.rdx, 5u);
}

TEST_F(EmulatorTest, MovToCr0ChecksAndReportsPagingChanges) {
  const std::uint64_t initial = cpu.cr0;
  registers.rax = initial & ~(1ull << 16);  // clear WP
  EXPECT_EQ(run({0x0f, 0x22, 0xc0}).kind, EmulationKind::Emulated);
  EXPECT_EQ(cpu.cr0, initial & ~(1ull << 16));
  EXPECT_EQ(services.paging_changes, 1);
  registers.rax = cpu.cr0 | (1ull << 3);  // TS: no paging change
  run({0x0f, 0x22, 0xc0});
  EXPECT_EQ(services.paging_changes, 1);
  EXPECT_NE(cpu.cr0 & (1ull << 3), 0u);

  const std::uint64_t before = cpu.cr0;
  registers.rax = before & ~(1ull << 31);  // leaving paging in 64-bit mode
  expect_general_protection(run({0x0f, 0x22, 0xc0}));
  registers.rax = before | (1ull << 32);  // reserved high bit
  expect_general_protection(run({0x0f, 0x22, 0xc0}));
  registers.rax = (before | (1ull << 29)) & ~(1ull << 30);  // NW without CD
  expect_general_protection(run({0x0f, 0x22, 0xc0}));
  EXPECT_EQ(cpu.cr0, before);
  EXPECT_EQ(services.paging_changes, 1);
}

TEST_F(EmulatorTest, MovToCr4ChecksAndReportsPagingChanges) {
  registers.rax = cpu.cr4 | (1u << 7);  // PGE
  EXPECT_EQ(run({0x0f, 0x22, 0xe0}).kind, EmulationKind::Emulated);
  EXPECT_EQ(services.paging_changes, 1);
  EXPECT_NE(cpu.cr4 & (1u << 7), 0u);
  const std::uint64_t before = cpu.cr4;
  registers.rax = before & ~(1u << 5);  // PAE off in IA-32e mode
  expect_general_protection(run({0x0f, 0x22, 0xe0}));
  registers.rax = before | (1u << 13);  // VMXE: no VMX in the virtual CPU
  expect_general_protection(run({0x0f, 0x22, 0xe0}));
  registers.rax = before | (1u << 12);  // LA57 cannot change in IA-32e mode
  expect_general_protection(run({0x0f, 0x22, 0xe0}));
  cpu.cr3 = 0x1005;
  registers.rax = before | (1u << 17);  // PCIDE with CR3[11:0] != 0
  expect_general_protection(run({0x0f, 0x22, 0xe0}));
  EXPECT_EQ(cpu.cr4, before);
}

TEST_F(EmulatorTest, MovToCr8AcceptsOnlyFourBits) {
  registers.rax = 0xf;
  EXPECT_EQ(run({0x44, 0x0f, 0x22, 0xc0}).mnemonic, "mov cr8, rax");
  EXPECT_EQ(cpu.cr8, 0xfu);
  registers.rax = 0x10;
  expect_general_protection(run({0x44, 0x0f, 0x22, 0xc0}));
  EXPECT_EQ(cpu.cr8, 0xfu);
}

TEST_F(EmulatorTest, ControlRegistersInUserModeAreGeneralProtection) {
  enter_user_mode();
  registers.rax = 0x7000;
  expect_general_protection(run({0x0f, 0x22, 0xd8}));
  expect_general_protection(run({0x0f, 0x20, 0xd6}));
  EXPECT_TRUE(services.cr3_writes.empty());
  EXPECT_EQ(registers.rsi, 0u);
}

TEST_F(EmulatorTest, ClearTaskSwitchedAndCacheInstructions) {
  cpu.cr0 |= 1u << 3;
  EXPECT_EQ(run({0x0f, 0x06}).mnemonic, "clts");
  EXPECT_EQ(cpu.cr0 & (1u << 3), 0u);
  EXPECT_EQ(run({0x0f, 0x09}).kind, EmulationKind::Emulated);
  EXPECT_EQ(run({0x0f, 0x08}).kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rip, kCode + 2);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x06}));
  expect_general_protection(run({0x0f, 0x09}));
}

TEST_F(EmulatorTest, LmswSetsLowBitsButCannotClearProtection) {
  registers.rax = 0x000e;  // PE clear, MP EM TS set
  EXPECT_EQ(run({0x0f, 0x01, 0xf0}).mnemonic, "lmsw ax");
  EXPECT_EQ(cpu.cr0 & 0xf, 0xfu);
}

TEST_F(EmulatorTest, LgdtReadsLimitAndBaseThroughRdi) {
  memory.put_u16(kData, 0x37);
  memory.put_u64(kData + 2, 0xffff8000'00102000ull);
  registers.rdi = kData;
  const Emulation emulation = run({0x0f, 0x01, 0x17});
  EXPECT_EQ(emulation.mnemonic, "lgdt [rdi]");
  EXPECT_EQ(cpu.gdtr.limit, 0x37);
  EXPECT_EQ(cpu.gdtr.base, 0xffff8000'00102000ull);
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(EmulatorTest, LidtWithStackRelativeOperandAsTheGuestBuildsIt) {
  // cpu_init: struct descriptor_table_pointer on the stack, lidt 0x6(%rsp).
  memory.put_u16(kStack + 6, 0x2ff);
  memory.put_u64(kStack + 8, 0x106000);
  const Emulation emulation = run({0x0f, 0x01, 0x5c, 0x24, 0x06});
  EXPECT_EQ(emulation.mnemonic, "lidt [rsp+0x06]");
  EXPECT_EQ(cpu.idtr.limit, 0x2ff);
  EXPECT_EQ(cpu.idtr.base, 0x106000u);
  EXPECT_EQ(registers.rip, kCode + 5);
}

TEST_F(EmulatorTest, LidtRipRelativeIsRelativeToTheNextInstruction) {
  // lidt [rip + 0x100]: 7 bytes long.
  memory.put_u16(kCode + 7 + 0x100, 0xfff);
  memory.put_u64(kCode + 7 + 0x102, 0x123000);
  run({0x0f, 0x01, 0x1d, 0x00, 0x01, 0x00, 0x00});
  EXPECT_EQ(cpu.idtr.limit, 0xfff);
  EXPECT_EQ(cpu.idtr.base, 0x123000u);
}

TEST_F(EmulatorTest, LgdtWithSegmentOverrideAndAddressSizePrefix) {
  cpu.gs_base = kData;
  registers.rax = 0x10;
  memory.put_u16(kData + 0x10, 0x17);
  memory.put_u64(kData + 0x12, 0x4000);
  run({0x65, 0x0f, 0x01, 0x10});  // lgdt gs:[rax]
  EXPECT_EQ(cpu.gdtr.base, 0x4000u);
  EXPECT_EQ(cpu.gdtr.limit, 0x17);

  registers.rdi = 0xffffffff'00000000ull | (kData + 0x20);  // 0x67: EDI only
  memory.put_u16(kData + 0x20, 0x27);
  memory.put_u64(kData + 0x22, 0x5000);
  run({0x67, 0x0f, 0x01, 0x17});
  EXPECT_EQ(cpu.gdtr.base, 0x5000u);
}

TEST_F(EmulatorTest, LgdtFaultsAreReflected) {
  const TableRegister before = cpu.gdtr;
  memory.put_u16(kData, 0x37);
  memory.put_u64(kData + 2, 0x0000800000000000ull);  // non-canonical base
  registers.rdi = kData;
  expect_general_protection(run({0x0f, 0x01, 0x17}));

  registers.rdi = kData + 0x1000 - 4;  // the operand crosses into an unmapped page
  memory.unmap_page(kData + 0x1000);
  const Emulation emulation = run({0x0f, 0x01, 0x17});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kData + 0x1000));
  EXPECT_EQ(emulation.event.error_code, 0u);

  registers.rsp = 0x0000900000000000ull;  // non-canonical stack reference: #SS(0)
  const Emulation stack = run({0x0f, 0x01, 0x5c, 0x24, 0x06});
  EXPECT_EQ(stack.event.vector, kVectorStackFault);
  EXPECT_EQ(cpu.gdtr.base, before.base);
  EXPECT_EQ(cpu.idtr.base, 0u);

  enter_user_mode();
  registers.rdi = kData;
  expect_general_protection(run({0x0f, 0x01, 0x17}));
}

TEST_F(EmulatorTest, LtrLoadsTheTssAndMarksItBusy) {
  registers.rax = fakes::kTssSelector;
  const Emulation emulation = run({0x0f, 0x00, 0xd8});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "ltr ax");
  EXPECT_EQ(cpu.tr, fakes::kTssSelector);
  EXPECT_EQ(cpu.tss_base, kTss);
  EXPECT_EQ(cpu.tss_limit, fakes::kTssLimit);
  EXPECT_EQ(memory.get_u8(kGdt + 0x28 + 5), 0x8b);  // type 0xb: busy
  // A busy TSS cannot be loaded again.
  expect_general_protection(run({0x0f, 0x00, 0xd8}), fakes::kTssSelector);
}

TEST_F(EmulatorTest, LtrFromMemoryAndItsFaults) {
  memory.put_u16(kData, fakes::kTssSelector);
  registers.rax = kData;
  EXPECT_EQ(run({0x0f, 0x00, 0x18}).kind, EmulationKind::Emulated);  // ltr [rax]
  EXPECT_EQ(cpu.tr, fakes::kTssSelector);

  registers.rax = 0;
  expect_general_protection(run({0x0f, 0x00, 0xd8}), 0);  // null
  registers.rax = fakes::kKernelCodeSelector;
  expect_general_protection(run({0x0f, 0x00, 0xd8}), 0x08);  // not a TSS
  registers.rax = 0x30;  // its 16 bytes would pass the GDT limit
  expect_general_protection(run({0x0f, 0x00, 0xd8}), 0x30);
  memory.put_u64(kGdt + 0x28, memory.get_u64(kGdt + 0x28) & ~(0xffull << 40));
  memory.put_bytes(kGdt + 0x28 + 5, {0x09});  // available, not present
  registers.rax = fakes::kTssSelector;
  const Emulation not_present = run({0x0f, 0x00, 0xd8});
  EXPECT_EQ(not_present.event.vector, kVectorSegmentNotPresent);
  EXPECT_EQ(not_present.event.error_code, 0x28u);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x00, 0xd8}));
}

TEST_F(EmulatorTest, LldtNullDisablesTheLdt) {
  cpu.ldtr = 0x40;
  registers.rax = 0;
  EXPECT_EQ(run({0x0f, 0x00, 0xd0}).kind, EmulationKind::Emulated);
  EXPECT_EQ(cpu.ldtr, 0);
  registers.rax = fakes::kKernelDataSelector;  // not an LDT descriptor
  expect_general_protection(run({0x0f, 0x00, 0xd0}), 0x10);
}

TEST_F(EmulatorTest, StoreInstructionsAnswerFromTheVirtualCpu) {
  cpu.gdtr = {0xffff8000'00001000ull, 0x37};
  cpu.tr = fakes::kTssSelector;
  registers.rax = kData;
  EXPECT_EQ(run({0x0f, 0x01, 0x00}).mnemonic, "sgdt [rax]");
  EXPECT_EQ(memory.get_u16(kData), 0x37);
  EXPECT_EQ(memory.get_u64(kData + 2), 0xffff8000'00001000ull);
  registers.rax = ~std::uint64_t{0};
  run({0x0f, 0x00, 0xc8});  // str eax
  EXPECT_EQ(registers.rax, fakes::kTssSelector);
  run({0x0f, 0x01, 0xe0});  // smsw eax
  EXPECT_EQ(registers.rax, cpu.cr0 & 0xffffffff);

  enter_user_mode();
  cpu.cr4 |= 1u << 11;  // the guest's own UMIP
  expect_general_protection(run({0x0f, 0x01, 0xe0}));
}

TEST_F(EmulatorTest, MovToSegmentRegistersAsGdtLoadDoes) {
  registers.rax = fakes::kKernelDataSelector;
  cpu.ss = 0;
  Emulation emulation = run({0x8e, 0xd0});
  EXPECT_EQ(emulation.mnemonic, "mov ss, ax");
  EXPECT_TRUE(emulation.interrupt_shadow);
  EXPECT_EQ(cpu.ss, fakes::kKernelDataSelector);
  EXPECT_EQ(run({0x8e, 0xd8}).kind, EmulationKind::Emulated);  // mov ds, ax
  cpu.fs_base = 0x1234;
  registers.rax = 0;
  EXPECT_EQ(run({0x8e, 0xe0}).kind, EmulationKind::Emulated);  // mov fs, ax with null
  EXPECT_EQ(cpu.fs_base, 0u);
  EXPECT_EQ(registers.rip, kCode + 2);
}

TEST_F(EmulatorTest, MovToSegmentRegistersChecksDescriptors) {
  registers.rax = 0x13;  // RPL 3 at CPL0 for SS
  expect_general_protection(run({0x8e, 0xd0}), 0x10);
  registers.rax = fakes::kKernelCodeSelector;  // code is not a stack
  expect_general_protection(run({0x8e, 0xd0}), 0x08);
  registers.rax = 0;  // null SS is allowed at CPL0 in 64-bit mode
  EXPECT_EQ(run({0x8e, 0xd0}).kind, EmulationKind::Emulated);
  enter_user_mode();
  registers.rax = fakes::kKernelDataSelector;  // DPL0 data from CPL3
  expect_general_protection(run({0x8e, 0xd8}), 0x10);
  registers.rax = fakes::kUserDataSelector;
  EXPECT_EQ(run({0x8e, 0xd8}).kind, EmulationKind::Emulated);
}

TEST_F(EmulatorTest, WrmsrAndRdmsrOfEveryVirtualMsr) {
  struct Msr {
    std::uint32_t index;
    std::uint64_t VirtualCpu::*field;
    std::uint64_t value;
  };
  const std::vector<Msr> msrs{{0xc0000081, &VirtualCpu::star, 0x0013000800000000ull},
                              {0xc0000082, &VirtualCpu::lstar, 0xffffffff81000000ull},
                              {0xc0000083, &VirtualCpu::cstar, 0xffffffff81000100ull},
                              {0xc0000084, &VirtualCpu::fmask, 0x47700},
                              {0xc0000100, &VirtualCpu::fs_base, 0x7fff12345000ull},
                              {0xc0000101, &VirtualCpu::gs_base, 0xffff888000000000ull},
                              {0xc0000102, &VirtualCpu::kernel_gs_base, 0x12345000}};
  for (const Msr& msr : msrs) {
    registers.rcx = msr.index;
    registers.rax = 0xffffffff'00000000ull | (msr.value & 0xffffffff);  // upper half ignored
    registers.rdx = msr.value >> 32;
    EXPECT_EQ(run({0x0f, 0x30}).mnemonic, "wrmsr");
    EXPECT_EQ(cpu.*msr.field, msr.value) << std::hex << msr.index;
    registers.rax = registers.rdx = 0xdead'0000'0000'dead;
    EXPECT_EQ(run({0x0f, 0x32}).mnemonic, "rdmsr");
    EXPECT_EQ(registers.rax, msr.value & 0xffffffff);  // EDX:EAX, upper halves cleared
    EXPECT_EQ(registers.rdx, msr.value >> 32);
  }
  EXPECT_EQ(registers.rip, kCode + 2);
}

TEST_F(EmulatorTest, EferWriteAsTheGuestDoesAndItsChecks) {
  cpu.efer = 0x500;  // LME, LMA: SCE still clear
  registers.rcx = 0xc0000080;
  registers.rax = 0x501;
  registers.rdx = 0;
  EXPECT_EQ(run({0x0f, 0x30}).kind, EmulationKind::Emulated);
  EXPECT_EQ(cpu.efer, 0x501u);
  EXPECT_EQ(services.paging_changes, 0);
  registers.rax = 0xd01;  // NXE
  run({0x0f, 0x30});
  EXPECT_EQ(cpu.efer, 0xd01u);
  EXPECT_EQ(services.paging_changes, 1);
  registers.rax = 0x401;  // clearing LME with paging on
  expect_general_protection(run({0x0f, 0x30}));
  registers.rax = 0x1501;  // SVME: reserved here
  expect_general_protection(run({0x0f, 0x30}));
  EXPECT_EQ(cpu.efer, 0xd01u);
}

TEST_F(EmulatorTest, UnknownMsrAndNonCanonicalBaseAreGeneralProtection) {
  registers.rcx = 0x1b;  // IA32_APIC_BASE: not in the virtual CPU
  const Emulation read = run({0x0f, 0x32});
  expect_general_protection(read);
  EXPECT_NE(read.detail.find("0x1b"), std::string::npos);
  expect_general_protection(run({0x0f, 0x30}));
  registers.rcx = 0xc0000082;
  registers.rax = 0;
  registers.rdx = 0x8000;  // LSTAR = 0x0000800000000000
  expect_general_protection(run({0x0f, 0x30}));
  EXPECT_EQ(cpu.lstar, 0u);
  registers.rcx = 0xc0000084;
  registers.rdx = 1;  // FMASK bits 63:32 are reserved
  expect_general_protection(run({0x0f, 0x30}));
  enter_user_mode();
  registers.rcx = 0xc0000080;
  expect_general_protection(run({0x0f, 0x32}));
}

TEST_F(EmulatorTest, SwapgsExchangesTheBases) {
  cpu.gs_base = 0x1111;
  cpu.kernel_gs_base = 0x2222;
  EXPECT_EQ(run({0x0f, 0x01, 0xf8}).mnemonic, "swapgs");
  EXPECT_EQ(cpu.gs_base, 0x2222u);
  EXPECT_EQ(cpu.kernel_gs_base, 0x1111u);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x01, 0xf8}));
}

TEST_F(EmulatorTest, InvlpgNotifiesWithoutTouchingMemory) {
  registers.rax = 0x7f0000123000;  // not even mapped in the fake
  EXPECT_EQ(run({0x0f, 0x01, 0x38}).mnemonic, "invlpg [rax]");
  EXPECT_EQ(services.invalidated, std::vector{GuestVirtAddr(0x7f0000123000)});
  registers.rax = 0x0000800000000000ull;  // non-canonical: a no-op
  EXPECT_EQ(run({0x0f, 0x01, 0x38}).kind, EmulationKind::Emulated);
  EXPECT_EQ(services.invalidated.size(), 1u);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x01, 0x38}));
}

TEST_F(EmulatorTest, DebugRegistersAreUnsupportedInKernelMode) {
  const Emulation emulation = run({0x0f, 0x23, 0xc0});
  EXPECT_EQ(emulation.kind, EmulationKind::Unsupported);
  EXPECT_EQ(emulation.mnemonic, "mov dr0, rax");
  EXPECT_FALSE(emulation.detail.empty());
  EXPECT_EQ(registers.rip, kCode);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x23, 0xc0}));
}

TEST_F(EmulatorTest, TimeStampCounterNeedsTheRealCounter) {
  EXPECT_EQ(run({0x0f, 0x31}).kind, EmulationKind::Unsupported);
  enter_user_mode();
  cpu.cr4 |= 1u << 2;  // TSD
  expect_general_protection(run({0x0f, 0x31}));
}

}  // namespace
}  // namespace vmlab::full
