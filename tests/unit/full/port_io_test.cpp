// Port I/O for the instruction emulator (modes/full/src/port_io.cpp): in,
// out, ins and outs in every form the vmlab guest uses (bytes as `objdump -d`
// of vmlab-guest.elf shows them), with rep, and the I/O permission checks.
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

TEST_F(EmulatorTest, OutInEveryFormAndSize) {
  registers.rax = 0x11223344'55667788;
  registers.rdx = 0xffff'03f8;
  EXPECT_EQ(run({0xee}).mnemonic, "out dx, al");
  EXPECT_EQ(run({0xe6, 0xe9}).mnemonic, "out 0xE9, al");
  run({0x66, 0xef});
  run({0xef});
  run({0xe7, 0x80});
  const std::vector<PortWrite> expected{{0x3f8, 1, 0x88},
                                        {0xe9, 1, 0x88},
                                        {0x3f8, 2, 0x7788},
                                        {0x3f8, 4, 0x55667788},
                                        {0x80, 4, 0x55667788}};
  EXPECT_EQ(services.writes, expected);
  EXPECT_EQ(registers.rip, kCode + 2);
}

TEST_F(EmulatorTest, InMergesNarrowResultsAndZeroExtendsEax) {
  registers.rax = 0x11223344'55667788;
  registers.rdx = 0x1f7;
  services.read_values = {0xab, 0xcdef, 0x89abcdef, 0x42};
  EXPECT_EQ(run({0xec}).mnemonic, "in al, dx");
  EXPECT_EQ(registers.rax, 0x11223344'556677abull);
  run({0x66, 0xed});
  EXPECT_EQ(registers.rax, 0x11223344'5566cdefull);
  run({0xed});
  EXPECT_EQ(registers.rax, 0x89abcdefull);  // a 32-bit write clears bits 63:32
  run({0xe4, 0x60});
  EXPECT_EQ(registers.rax, 0x89abcd42ull);
  const std::vector<std::pair<std::uint16_t, unsigned>> expected{
      {0x1f7, 1}, {0x1f7, 2}, {0x1f7, 4}, {0x60, 1}};
  EXPECT_EQ(services.reads, expected);
}

TEST_F(EmulatorTest, UserModePortAccessWithoutBitmapIsGeneralProtection) {
  enter_user_mode();
  install_tss(104, fakes::kTssLimit);  // the guest's setting: bitmap past the limit
  expect_general_protection(run({0xee}));
  expect_general_protection(run({0xec}));
  EXPECT_TRUE(services.writes.empty());
  EXPECT_TRUE(services.reads.empty());
}

TEST_F(EmulatorTest, UserModePortAccessFollowsTheIoPermissionBitmap) {
  enter_user_mode();
  install_tss(0x68, 0x68 + 0x2000);  // a full bitmap
  memory.put_bytes(kTss + 0x68 + 0x3f8 / 8, {0x00, 0x00});
  memory.put_bytes(kTss + 0x68 + 0x80 / 8, {0x01});  // port 0x80 denied, 0x81 allowed
  memory.put_bytes(kTss + 0x68 + 0x3ff / 8, {0x00, 0x01});
  registers.rdx = 0x3f8;
  EXPECT_EQ(run({0xee}).kind, EmulationKind::Emulated);
  expect_general_protection(run({0xe6, 0x80}));
  EXPECT_EQ(run({0xe6, 0x81}).kind, EmulationKind::Emulated);
  registers.rdx = 0x3ff;  // a word at 0x3ff also needs 0x400, whose bit is set
  EXPECT_EQ(run({0xee}).kind, EmulationKind::Emulated);
  expect_general_protection(run({0x66, 0xef}));
  const std::vector<PortWrite> expected{{0x3f8, 1, 0}, {0x81, 1, 0}, {0x3ff, 1, 0}};
  EXPECT_EQ(services.writes, expected);
}

TEST_F(EmulatorTest, UserModePortAccessWithIoplThree) {
  enter_user_mode();
  cpu.iopl = 3;
  registers.rdx = 0xe9;
  EXPECT_EQ(run({0xee}).kind, EmulationKind::Emulated);
  EXPECT_EQ(services.writes.size(), 1u);
}

TEST_F(EmulatorTest, RepInswStoresWordsUpward) {
  registers.rdx = 0x1f0;
  registers.rdi = kData;
  registers.rcx = 3;
  services.read_values = {0x1111, 0x2222, 0x3333};
  const Emulation emulation = run({0xf3, 0x66, 0x6d});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "rep insw");
  EXPECT_EQ(memory.get_u16(kData), 0x1111);
  EXPECT_EQ(memory.get_u16(kData + 2), 0x2222);
  EXPECT_EQ(memory.get_u16(kData + 4), 0x3333);
  EXPECT_EQ(registers.rdi, kData + 6);
  EXPECT_EQ(registers.rcx, 0u);
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(EmulatorTest, RepInsbWithDirectionFlagStoresDownward) {
  registers.rflags |= kRflagsDirection;
  registers.rdx = 0x60;
  registers.rdi = kData + 2;
  registers.rcx = 3;
  services.read_values = {0xa1, 0xa2, 0xa3};
  run({0xf3, 0x6c});
  EXPECT_EQ(memory.get_u8(kData + 2), 0xa1);
  EXPECT_EQ(memory.get_u8(kData + 1), 0xa2);
  EXPECT_EQ(memory.get_u8(kData), 0xa3);
  EXPECT_EQ(registers.rdi, kData - 1);
  EXPECT_EQ(registers.rcx, 0u);
}

TEST_F(EmulatorTest, RepOutsAndSingleOutsIgnoreOrUseRcx) {
  memory.put_bytes(kData, {'v', 'm', 'l'});
  registers.rsi = kData;
  registers.rdx = 0xe9;
  registers.rcx = 2;
  EXPECT_EQ(run({0xf3, 0x6e}).mnemonic, "rep outsb");
  EXPECT_EQ(registers.rsi, kData + 2);
  EXPECT_EQ(registers.rcx, 0u);
  registers.rcx = 7;
  EXPECT_EQ(run({0x6e}).mnemonic, "outsb");  // no rep: one byte, RCX untouched
  EXPECT_EQ(registers.rcx, 7u);
  const std::vector<PortWrite> expected{{0xe9, 1, 'v'}, {0xe9, 1, 'm'}, {0xe9, 1, 'l'}};
  EXPECT_EQ(services.writes, expected);
}

TEST_F(EmulatorTest, RepWithZeroCountDoesNothing) {
  registers.rcx = 0;
  registers.rdx = 0xe9;
  registers.rsi = kData;
  EXPECT_EQ(run({0xf3, 0x6e}).kind, EmulationKind::Emulated);
  EXPECT_TRUE(services.writes.empty());
  EXPECT_EQ(registers.rsi, kData);
  EXPECT_EQ(registers.rip, kCode + 2);
}

TEST_F(EmulatorTest, RepInsFaultStopsAtTheFaultingElement) {
  memory.unmap_page(kData + 0x1000);
  registers.rdx = 0x1f0;
  registers.rdi = kData + 0x1000 - 2;
  registers.rcx = 4;
  const Emulation emulation = run({0xf3, 0x66, 0x6d});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kData + 0x1000));
  EXPECT_EQ(emulation.event.error_code, kPageFaultWrite);
  EXPECT_EQ(registers.rdi, kData + 0x1000);  // one word done
  EXPECT_EQ(registers.rcx, 3u);
  EXPECT_EQ(registers.rip, kCode);  // restartable
}

TEST_F(EmulatorTest, StringInputWith32BitAddressSizeUsesEdiAndEcx) {
  registers.rdx = 0x60;
  registers.rdi = 0xdead0000'00000000ull | kData;
  registers.rcx = 0xbeef0000'00000001ull;
  services.read_values = {0x5a};
  EXPECT_EQ(run({0x67, 0xf3, 0x6c}).kind, EmulationKind::Emulated);
  EXPECT_EQ(memory.get_u8(kData), 0x5a);
  EXPECT_EQ(registers.rdi, kData + 1);
  EXPECT_EQ(registers.rcx, 0u);
}

TEST_F(EmulatorTest, StringOutputInUserModeReadsAsUser) {
  enter_user_mode();
  cpu.iopl = 3;
  memory.make_supervisor_only(kData);
  registers.rsi = kData;
  registers.rdx = 0xe9;
  const Emulation emulation = run({0x6e});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultPresent | kPageFaultUser);
}

}  // namespace
}  // namespace vmlab::full
