// The trap-and-emulate instruction emulator against a fake guest memory and
// fake VMM services: each instruction the vmlab guest kernel executes at CPL3
// (bytes as `objdump -d` of vmlab-guest.elf shows them), its privilege
// checks, and hostile bytes.
#include "vmlab/full/emulator.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "../monitor/fake_guest_memory.hpp"

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)

using fakes::FakeGuestMemory;

constexpr std::uint64_t kCode = 0x10000;
constexpr std::uint64_t kGdt = 0x2000;
constexpr std::uint64_t kTss = 0x5000;
constexpr std::uint64_t kData = 0x30000;
constexpr std::uint64_t kStack = 0x40000;

struct PortWrite {
  std::uint16_t port;
  unsigned size;
  std::uint32_t value;
  bool operator==(const PortWrite&) const = default;
};

class RecordingServices final : public MonitorServices {
 public:
  std::uint32_t port_read(std::uint16_t port, unsigned size) override {
    reads.emplace_back(port, size);
    if (read_values.empty()) return 0xffffffff;
    const std::uint32_t value = read_values.front();
    read_values.pop_front();
    return value;
  }
  void port_write(std::uint16_t port, unsigned size, std::uint32_t value) override {
    writes.push_back({port, size, value});
  }
  void cr3_written(std::uint64_t old_cr3, std::uint64_t new_cr3) override {
    cr3_writes.emplace_back(old_cr3, new_cr3);
  }
  void page_invalidated(std::uint64_t address) override { invalidated.push_back(address); }
  void paging_control_changed() override { ++paging_changes; }

  std::deque<std::uint32_t> read_values;
  std::vector<std::pair<std::uint16_t, unsigned>> reads;
  std::vector<PortWrite> writes;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cr3_writes;
  std::vector<std::uint64_t> invalidated;
  int paging_changes = 0;
};

class EmulatorTest : public ::testing::Test {
 protected:
  EmulatorTest() {
    cpu.gdtr = {kGdt, fakes::install_vmlab_gdt(memory, kGdt, kTss)};
    registers.rip = kCode;
    registers.rsp = kStack;
  }

  void place(std::initializer_list<std::uint8_t> bytes, std::uint64_t address = kCode) {
    memory.put_bytes(address, bytes);
    registers.rip = address;
  }
  Emulation run(std::initializer_list<std::uint8_t> bytes) {
    place(bytes);
    return emulate_privileged(registers, cpu, memory, services);
  }
  void enter_user_mode() {
    cpu.cpl = 3;
    cpu.cs = fakes::kUserCodeSelector;
    cpu.ss = fakes::kUserDataSelector;
  }
  // A TSS as ltr would have left it, with an I/O bitmap at `bitmap_offset`.
  void install_tss(std::uint16_t bitmap_offset, std::uint32_t limit) {
    cpu.tr = fakes::kTssSelector;
    cpu.tss_base = kTss;
    cpu.tss_limit = limit;
    memory.put_u16(kTss + 0x66, bitmap_offset);
  }

  FakeGuestMemory memory;
  RecordingServices services;
  GuestRegisters registers;
  VirtualCpu cpu;
};

void expect_general_protection(const Emulation& emulation, std::uint32_t error_code = 0) {
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect) << emulation.mnemonic;
  EXPECT_EQ(emulation.event.vector, kVectorGeneralProtection) << emulation.mnemonic;
  EXPECT_EQ(emulation.event.error_code, std::optional<std::uint32_t>(error_code))
      << emulation.mnemonic;
}

// --- cli, sti, hlt ------------------------------------------------------------

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

// --- Port I/O -------------------------------------------------------------------

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
  EXPECT_EQ(emulation.event.fault_address, kData + 0x1000);
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

// --- Control registers -------------------------------------------------------------

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

// --- Descriptor tables ---------------------------------------------------------------

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
  EXPECT_EQ(emulation.event.fault_address, kData + 0x1000);
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

// --- Segment registers and far returns ----------------------------------------------

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

TEST_F(EmulatorTest, FarReturnToMorePrivilegedCodeIsGeneralProtection) {
  enter_user_mode();
  memory.put_u64(kStack, 0x102345);
  memory.put_u64(kStack + 8, fakes::kKernelCodeSelector);
  expect_general_protection(run({0x48, 0xcb}), 0x08);
  EXPECT_EQ(cpu.cpl, 3);
  EXPECT_EQ(registers.rip, kCode);
}

// --- iretq --------------------------------------------------------------------------

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
  EXPECT_EQ(unmapped.event.fault_address, kData + 0x1000);
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

// --- MSRs, swapgs, invlpg -----------------------------------------------------------

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
  EXPECT_EQ(services.invalidated, std::vector<std::uint64_t>{0x7f0000123000});
  registers.rax = 0x0000800000000000ull;  // non-canonical: a no-op
  EXPECT_EQ(run({0x0f, 0x01, 0x38}).kind, EmulationKind::Emulated);
  EXPECT_EQ(services.invalidated.size(), 1u);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x01, 0x38}));
}

// --- Software interrupts, syscall, sysret -------------------------------------------

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

// --- What is not emulated, and bad bytes ---------------------------------------------

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

TEST_F(EmulatorTest, AnOrdinaryInstructionThatFaultedGetsItsOwnTrap) {
  registers.rbx = 0x0000800000000000ull;
  place({0x48, 0x8b, 0x03});  // mov rax, [rbx]: a genuine #GP(0)
  Emulation emulation =
      emulate_privileged(registers, cpu, memory, services, Event{kVectorGeneralProtection, 0u});
  expect_general_protection(emulation);
  EXPECT_EQ(emulation.mnemonic, "mov rax, [rbx]");
  place({0x0f, 0x0b});  // ud2
  emulation = emulate_privileged(registers, cpu, memory, services,
                                 Event{kVectorInvalidOpcode, std::nullopt});
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorInvalidOpcode);
}

TEST_F(EmulatorTest, UndecodableBytesAreInvalidOpcode) {
  const Emulation emulation = run({0x06});  // push es: invalid in 64-bit mode
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorInvalidOpcode);
  EXPECT_TRUE(emulation.mnemonic.empty());
  EXPECT_EQ(run({0xf0, 0xfa}).event.vector, kVectorInvalidOpcode);  // lock cli
}

TEST_F(EmulatorTest, OverlongInstructionIsGeneralProtection) {
  place({0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
         0xee});
  expect_general_protection(emulate_privileged(registers, cpu, memory, services));
}

TEST_F(EmulatorTest, FetchFaultsAreReflectedAsFetchPageFaults) {
  memory.unmap_page(kCode);
  const Emulation emulation = run({0xfa});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultFetch);
  EXPECT_EQ(emulation.event.fault_address, kCode);
}

TEST_F(EmulatorTest, InstructionEndingAtAPageBoundaryRunsBeforeAnUnmappedPage) {
  memory.unmap_page(kCode + 0x2000);
  place({0x0f, 0x22}, kCode + 0x2000 - 2);  // mov cr3, ... continues on the unmapped page
  Emulation emulation = emulate_privileged(registers, cpu, memory, services);
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, kCode + 0x2000);

  place({0xfa}, kCode + 0x2000 - 1);  // cli, the page's last byte
  emulation = emulate_privileged(registers, cpu, memory, services);
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rip, kCode + 0x2000);
}

TEST_F(EmulatorTest, UserModeFetchesAsUser) {
  enter_user_mode();
  memory.make_supervisor_only(kCode);
  const Emulation emulation = run({0xfa});
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultFetch | kPageFaultUser | kPageFaultPresent);
}

// Random bytes at RIP, at either privilege, with random registers: whatever
// comes back, nothing crashes, and a decoded instruction names itself.
TEST_F(EmulatorTest, HostileBytesNeverCrash) {
  std::mt19937_64 random(20240601);
  std::map<EmulationKind, int> privileged_kinds;
  std::map<EmulationKind, int> store_kinds;
  memory.unmap_page(kCode + 0x1000);
  install_tss(0x68, 0x68 + 0x2000);
  for (int round = 0; round < 5000; ++round) {
    GuestRegisters state;
    VirtualCpu virtual_cpu = cpu;
    virtual_cpu.cpl = (round % 3 == 0) ? 3 : 0;
    for (std::uint64_t* field : {&state.rax, &state.rbx, &state.rcx, &state.rdx, &state.rsi,
                                 &state.rdi, &state.rbp, &state.r8, &state.r9, &state.r15}) {
      // Small values mostly, so that memory operands often land in the fake.
      *field = (random() % 4 == 0) ? random() : random() % memory.size();
    }
    state.rcx %= 64;  // bounded rep counts
    state.rsp = kStack;
    state.rflags = 0x2 | (random() & 0xcd5);
    // Near the end of the page, so that some instructions run into the hole.
    const std::uint64_t rip = kCode + 0x1000 - 1 - random() % 20;
    std::uint8_t bytes[15];
    for (auto& byte : bytes)
      byte = static_cast<std::uint8_t>(random());
    memory.put_bytes(rip, std::span(bytes, std::min<std::uint64_t>(15, kCode + 0x1000 - rip)));
    state.rip = rip;
    const Emulation privileged = emulate_privileged(state, virtual_cpu, memory, services);
    ++privileged_kinds[privileged.kind];
    EXPECT_LE(privileged.instruction_length, 15);
    if (privileged.kind != EmulationKind::Reflect) {
      EXPECT_FALSE(privileged.mnemonic.empty());
    }
    state.rip = rip;
    const Emulation store = emulate_memory_write(state, virtual_cpu, memory);
    ++store_kinds[store.kind];
    EXPECT_NE(store.kind, EmulationKind::Halt);
  }
  // The bytes did exercise the emulator, not only the decoder's #UD.
  EXPECT_GT(privileged_kinds[EmulationKind::Emulated], 50);
  EXPECT_GT(privileged_kinds[EmulationKind::Reflect], 1000);
  EXPECT_GT(privileged_kinds[EmulationKind::Unsupported], 0);
  EXPECT_GT(store_kinds[EmulationKind::Emulated], 50);
}

// --- Stores to page-table pages -------------------------------------------------------

class MemoryWriteTest : public EmulatorTest {
 protected:
  Emulation store(std::initializer_list<std::uint8_t> bytes) {
    place(bytes);
    return emulate_memory_write(registers, cpu, memory);
  }
};

TEST_F(MemoryWriteTest, MovRegisterStoresAPageTableEntry) {
  registers.rdi = kData + 0x18;
  registers.rax = 0x0000000000203067ull;
  const Emulation emulation = store({0x48, 0x89, 0x07});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated) << emulation.detail;
  EXPECT_EQ(emulation.mnemonic, "mov [rdi], rax");
  EXPECT_EQ(memory.get_u64(kData + 0x18), 0x203067u);
  EXPECT_EQ(emulation.written.address, kData + 0x18);
  EXPECT_EQ(emulation.written.length, 8u);
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(MemoryWriteTest, MovImmediateAndNarrowStores) {
  registers.rdi = kData;
  store({0x48, 0xc7, 0x47, 0x08, 0xff, 0xff, 0xff, 0xff});  // mov qword [rdi+8], -1
  EXPECT_EQ(memory.get_u64(kData + 8), ~std::uint64_t{0});
  registers.rax = kData + 0x20;
  store({0xc6, 0x00, 0x01});  // mov byte [rax], 1
  EXPECT_EQ(memory.get_u64(kData + 0x20), 1u);
  registers.rax = 0xabcd;
  const Emulation emulation = store({0x66, 0x89, 0x07});  // mov [rdi], ax
  EXPECT_EQ(memory.get_u16(kData), 0xabcd);
  EXPECT_EQ(emulation.written.length, 2u);
}

TEST_F(MemoryWriteTest, ReadModifyWriteStoresSetFlags) {
  registers.rdi = kData;
  memory.put_u64(kData, 0xf0);
  registers.rax = 0x0f;
  store({0x48, 0x09, 0x07});  // or [rdi], rax
  EXPECT_EQ(memory.get_u64(kData), 0xffu);
  EXPECT_EQ(registers.rflags & kRflagsZero, 0u);
  registers.rax = kData;
  store({0x48, 0x83, 0x20, 0x00});  // and qword [rax], 0
  EXPECT_EQ(memory.get_u64(kData), 0u);
  EXPECT_NE(registers.rflags & kRflagsZero, 0u);
  memory.put_u64(kData, 0xffffffff);
  store({0x83, 0x07, 0x01});  // add dword [rdi], 1
  EXPECT_EQ(memory.get_u64(kData), 0u);
  EXPECT_NE(registers.rflags & kRflagsCarry, 0u);
  EXPECT_NE(registers.rflags & kRflagsZero, 0u);
}

TEST_F(MemoryWriteTest, ExchangeAndCompareExchange) {
  registers.rdi = kData;
  memory.put_u64(kData, 0x1111);
  registers.rcx = 0x2222;
  store({0x48, 0x87, 0x0f});  // xchg [rdi], rcx
  EXPECT_EQ(memory.get_u64(kData), 0x2222u);
  EXPECT_EQ(registers.rcx, 0x1111u);

  registers.rax = 0x2222;  // expected value matches
  registers.rcx = 0x3333;
  store({0xf0, 0x48, 0x0f, 0xb1, 0x0f});  // lock cmpxchg [rdi], rcx
  EXPECT_EQ(memory.get_u64(kData), 0x3333u);
  EXPECT_NE(registers.rflags & kRflagsZero, 0u);

  registers.rax = 0x9999;  // mismatch: RAX gets the current value
  store({0xf0, 0x48, 0x0f, 0xb1, 0x0f});
  EXPECT_EQ(memory.get_u64(kData), 0x3333u);
  EXPECT_EQ(registers.rax, 0x3333u);
  EXPECT_EQ(registers.rflags & kRflagsZero, 0u);
}

TEST_F(MemoryWriteTest, RepStosqClearsAPageTable) {
  for (std::uint64_t offset = 0; offset < 4096; offset += 8)
    memory.put_u64(kData + offset, 7);
  registers.rdi = kData;
  registers.rcx = 512;
  registers.rax = 0;
  const Emulation emulation = store({0xf3, 0x48, 0xab});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "rep stosq");
  for (std::uint64_t offset = 0; offset < 4096; offset += 8) {
    ASSERT_EQ(memory.get_u64(kData + offset), 0u) << offset;
  }
  EXPECT_EQ(registers.rdi, kData + 4096);
  EXPECT_EQ(registers.rcx, 0u);
  EXPECT_EQ(emulation.written.address, kData);
  EXPECT_EQ(emulation.written.length, 4096u);
}

TEST_F(MemoryWriteTest, RepMovsbCopiesBackwardWithDirectionFlag) {
  memory.put_bytes(kData, {1, 2, 3, 4});
  registers.rflags |= kRflagsDirection;
  registers.rsi = kData + 3;
  registers.rdi = kData + 0x103;
  registers.rcx = 4;
  const Emulation emulation = store({0xf3, 0xa4});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(memory.get_u8(kData + 0x100), 1);
  EXPECT_EQ(memory.get_u8(kData + 0x103), 4);
  EXPECT_EQ(registers.rsi, kData - 1);
  EXPECT_EQ(emulation.written.address, kData + 0x100);
  EXPECT_EQ(emulation.written.length, 4u);
}

TEST_F(MemoryWriteTest, StoreTheGuestTablesForbidIsReflected) {
  enter_user_mode();
  memory.make_supervisor_only(kData);
  registers.rdi = kData;
  memory.put_u64(kData, 0x55);
  const Emulation emulation = store({0x48, 0x89, 0x07});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultPresent | kPageFaultWrite | kPageFaultUser);
  EXPECT_EQ(memory.get_u64(kData), 0x55u);
  EXPECT_EQ(registers.rip, kCode);
}

TEST_F(MemoryWriteTest, StoreToAPageTheGuestMapsReadOnlyIsReflected) {
  memory.make_read_only(kData);  // read-only in the guest's own tables, not just the shadow
  registers.rdi = kData;
  const Emulation emulation = store({0x48, 0x89, 0x07});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.error_code, kPageFaultPresent | kPageFaultWrite);
  EXPECT_EQ(emulation.event.fault_address, kData);
}

TEST_F(MemoryWriteTest, NotAStoreIsUnsupported) {
  registers.rdi = kData;
  EXPECT_EQ(store({0x48, 0x8b, 0x07}).kind, EmulationKind::Unsupported);  // mov rax, [rdi]
  registers.rax = kData;
  EXPECT_EQ(store({0xf2, 0x0f, 0x11, 0x00}).kind, EmulationKind::Unsupported);  // SSE movsd
  EXPECT_EQ(memory.write_count(), 0u);
  EXPECT_EQ(registers.rip, kCode);
}

}  // namespace
}  // namespace vmlab::full
