// The x86 holes (modes/full/src/holes.cpp, and the mov from a segment
// register and the store instructions of system_state.cpp), as a binary
// translator's call-out hands them to emulate_privileged: pushf, popf, push
// fs/gs, mov r/m from a segment register, lar, lsl, verr, verw, and sgdt,
// sidt, sldt, str, smsw with UMIP off. Every expected value is worked out
// from the Intel SDM (vol. 2A, 2B for each instruction) and from the
// fixture's GDT (fake_guest_memory.hpp: install_vmlab_gdt), never read back
// from the emulator.
#include "emulator_test_support.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace vmlab::full {
namespace {

using namespace monitor;  // NOLINT(google-build-using-namespace)
using namespace testing;  // NOLINT(google-build-using-namespace)

// The fixture's descriptors, second doublewords (bytes 4-7) as
// install_vmlab_gdt writes them: kernel code 0x00af9a00 (G, L, P, DPL0,
// execute/read), kernel data 0x00cf9200 (G, D/B, P, DPL0, read/write), user
// data 0x00cff200 (DPL3), user code 0x00affa00 (DPL3), and the available
// 64-bit TSS 0x00008900 (P, DPL0, type 9, byte-granular, base below 16 MiB).
// lar clears bits 19:16, the limit's top (Intel: undefined; QEMU clears them).
constexpr std::uint64_t kKernelCodeRights = 0x00a09a00;
constexpr std::uint64_t kKernelDataRights = 0x00c09200;
constexpr std::uint64_t kUserDataRights = 0x00c0f200;
constexpr std::uint64_t kTssRights = 0x00008900;

// Free GDT slots past the fixture's seven entries (0x00-0x30).
constexpr std::uint16_t kSpareSelector = 0x38;

class HoleTest : public EmulatorTest {
 protected:
  // An 8-byte descriptor with this access byte (P, DPL, S, type), the flags
  // nibble (G, D/B, L, AVL) and a 20-bit limit, base 0, at `selector`; the
  // GDT limit grows to hold it.
  void install_descriptor(std::uint16_t selector, std::uint8_t access, std::uint8_t flags,
                          std::uint32_t limit) {
    const std::uint64_t descriptor = (limit & 0xffff) | (std::uint64_t{access} << 40) |
                                     (std::uint64_t{(limit >> 16) & 0xf} << 48) |
                                     (std::uint64_t{flags & 0xfu} << 52);
    memory.put_u64(kGdt + (selector & 0xfff8u), descriptor);
    const auto last = static_cast<std::uint16_t>((selector & 0xfff8u) + 7);
    if (cpu.gdtr.limit < last) cpu.gdtr.limit = last;
  }
  bool zero_flag() const { return (registers.rflags & kRflagsZero) != 0; }
  // Runs `bytes` with ZF first set to the opposite of what is expected, so
  // that the check cannot pass by leaving ZF alone.
  Emulation run_expecting_zero_flag(std::initializer_list<std::uint8_t> bytes, bool expected) {
    if (expected) {
      registers.rflags &= ~kRflagsZero;
    } else {
      registers.rflags |= kRflagsZero;
    }
    return run(bytes);
  }
};

// --- pushf ---------------------------------------------------------------------

TEST_F(HoleTest, PushfqPushesTheVirtualInterruptFlagAndIopl) {
  // The real IF is 1 (the monitor runs the guest so) but the guest did cli;
  // its IOPL is 2. RF is set in the real flags.
  cpu.interrupt_flag = false;
  cpu.iopl = 2;
  registers.rflags = kRflagsFixed | kRflagsCarry | kRflagsZero | kRflagsDirection |
                     kRflagsAlignmentCheck | kRflagsInterrupt | kRflagsResume;
  const Emulation emulation = run({0x9c});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "pushfq");
  EXPECT_EQ(emulation.instruction_length, 1);
  EXPECT_EQ(registers.rsp, kStack - 8);
  // RFLAGS AND 00FCFFFFH: RF gone, IF clear, IOPL 2 (0x2000).
  EXPECT_EQ(memory.get_u64(kStack - 8), 0x2u | 0x1u | 0x40u | 0x400u | 0x40000u | 0x2000u);
  EXPECT_EQ(registers.rip, kCode + 1);
  EXPECT_EQ(registers.rflags & kRflagsResume, 0u);  // cleared as pushf completes
}

TEST_F(HoleTest, PushfqShowsTheVirtualInterruptFlagWhenSet) {
  cpu.interrupt_flag = true;
  registers.rflags = kRflagsFixed;
  run({0x48, 0x9c});  // REX.W changes nothing: still 64 bits
  EXPECT_EQ(memory.get_u64(kStack - 8), 0x202u);
}

TEST_F(HoleTest, PushfWithOperandSizePrefixPushesSixteenBits) {
  memory.put_u64(kStack - 8, 0x1111222233334444ull);
  cpu.interrupt_flag = true;
  cpu.iopl = 3;
  registers.rflags = kRflagsFixed | kRflagsSign | kRflagsAlignmentCheck;
  const Emulation emulation = run({0x66, 0x9c});
  EXPECT_EQ(emulation.mnemonic, "pushf");
  EXPECT_EQ(registers.rsp, kStack - 2);
  // FLAGS only: SF, IF, IOPL 3, bit 1; AC (bit 18) is not in the word. The
  // six bytes below are untouched.
  EXPECT_EQ(memory.get_u16(kStack - 2), 0x3282u);
  EXPECT_EQ(memory.get_u64(kStack - 8), 0x3282'2222'3333'4444ull);
}

TEST_F(HoleTest, PushfToAnUnmappedStackReflectsTheGuestsPageFault) {
  memory.unmap_page(kStack - 8);
  const Emulation emulation = run({0x9c});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kStack - 8));
  EXPECT_EQ(emulation.event.error_code, kPageFaultWrite);  // supervisor write, not present
  EXPECT_EQ(registers.rsp, kStack);
  EXPECT_EQ(registers.rip, kCode);

  enter_user_mode();  // the same push at CPL3 is a user access
  const Emulation user = run({0x9c});
  EXPECT_EQ(user.event.error_code, kPageFaultWrite | kPageFaultUser);
}

TEST_F(HoleTest, PushfToANonCanonicalStackIsStackFault) {
  // The quadword would be 0x0000800000000000..07: its first byte is not
  // canonical.
  registers.rsp = 0x0000800000000008ull;
  Emulation emulation = run({0x9c});
  EXPECT_EQ(emulation.event.vector, kVectorStackFault);
  EXPECT_EQ(emulation.event.error_code, 0u);
  // 0x00007ffffffffffc..0x0000800000000003: only its last byte is not.
  registers.rsp = 0x0000800000000004ull;
  emulation = run({0x9c});
  EXPECT_EQ(emulation.event.vector, kVectorStackFault);
  EXPECT_EQ(registers.rsp, 0x0000800000000004ull);
}

// --- popf ---------------------------------------------------------------------

TEST_F(HoleTest, PopfqAtCpl0LoadsIfAndIoplIntoTheVirtualCpu) {
  // Every bit a 64-bit popf could touch, plus reserved ones (3, 5, 15, 40),
  // VM, RF, VIF, and bit 1 clear; VIP is set beforehand and clear in the image.
  memory.put_u64(kStack, 0x1 | 0x8 | 0x20 | 0x100 | 0x200 | 0x400 | 0x3000 | 0x4000 | 0x8000 |
                             0x10000 | 0x20000 | 0x40000 | 0x80000 | 0x200000 | (1ull << 40));
  cpu.interrupt_flag = false;
  cpu.iopl = 0;
  registers.rflags = kRflagsFixed | kRflagsVirtualInterruptPending;
  const Emulation emulation = run({0x9d});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "popfq");
  EXPECT_FALSE(emulation.interrupt_shadow);  // only sti and mov ss have one
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 3);
  // CF, TF, IF, DF, IOPL, NT, AC, ID loaded; bit 1 set; VIP kept; VM, RF,
  // VIF and the reserved bits not loaded.
  EXPECT_EQ(registers.rflags, 0x2u | 0x1u | 0x100u | 0x200u | 0x400u | 0x3000u | 0x4000u |
                                  0x40000u | 0x100000u | 0x200000u);
  EXPECT_EQ(registers.rsp, kStack + 8);
  EXPECT_EQ(registers.rip, kCode + 1);
}

TEST_F(HoleTest, PopfqClearsWhatTheImageClears) {
  memory.put_u64(kStack, 0x2);
  cpu.interrupt_flag = true;
  cpu.iopl = 3;
  registers.rflags = kRflagsFixed | kRflagsCarry | kRflagsTrap | kRflagsAlignmentCheck |
                     kRflagsIdentification | kRflagsInterrupt | kRflagsIoplMask;
  run({0x9d});
  EXPECT_FALSE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 0);
  EXPECT_EQ(registers.rflags, 0x2u);
}

TEST_F(HoleTest, PopfqAtCpl3KeepsIoplAndKeepsIfAboveIopl) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  cpu.iopl = 0;
  memory.put_u64(kStack, 0x3000 | 0x2 | 0x1);  // IF clear, IOPL 3, CF
  const Emulation emulation = run({0x9d});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);  // no fault, the bits just stay
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 0);
  EXPECT_EQ(registers.rflags, 0x2u | 0x1u | 0x200u);
  EXPECT_EQ(registers.rsp, kStack + 8);
}

TEST_F(HoleTest, PopfqAtCpl3WithIopl3ChangesIfButNotIopl) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  cpu.iopl = 3;
  memory.put_u64(kStack, 0x2);  // IF clear, IOPL 0
  run({0x9d});
  EXPECT_FALSE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 3);
}

TEST_F(HoleTest, PopfWithOperandSizePrefixLoadsOnlyTheLowWord) {
  memory.put_u64(kStack, 0xffff'ffff'0000'3240ull);  // IF, IOPL 3, ZF; CF clear
  registers.rflags = kRflagsFixed | kRflagsCarry | kRflagsAlignmentCheck | kRflagsIdentification;
  const Emulation emulation = run({0x66, 0x9d});
  EXPECT_EQ(emulation.mnemonic, "popf");
  EXPECT_EQ(registers.rsp, kStack + 2);
  EXPECT_TRUE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.iopl, 3);
  // AC and ID are above the word and stay.
  EXPECT_EQ(registers.rflags, 0x2u | 0x40u | 0x200u | 0x3000u | 0x40000u | 0x200000u);
}

TEST_F(HoleTest, PopfFromAnUnmappedStackChangesNothing) {
  memory.unmap_page(kStack);
  registers.rflags = kRflagsFixed | kRflagsCarry;
  cpu.interrupt_flag = true;
  const Emulation emulation = run({0x9d});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kStack));
  EXPECT_EQ(emulation.event.error_code, 0u);  // supervisor read, not present
  EXPECT_EQ(registers.rsp, kStack);
  EXPECT_EQ(registers.rflags, 0x3u);
  EXPECT_TRUE(cpu.interrupt_flag);
}

// The CPUID-detection idiom: the ID flag is the guest's to toggle.
TEST_F(HoleTest, PushfAndPopfToggleTheIdFlag) {
  registers.rflags = kRflagsFixed;
  run({0x9c});
  memory.put_u64(registers.rsp, memory.get_u64(registers.rsp) ^ kRflagsIdentification);
  run({0x9d});
  EXPECT_EQ(registers.rflags, 0x2u | 0x200000u);
  EXPECT_EQ(registers.rsp, kStack);
}

// --- push fs, push gs -------------------------------------------------------------

TEST_F(HoleTest, PushFsAndGsPushTheVirtualSelectors) {
  cpu.fs = {fakes::kUserDataSelector, 3, true};
  cpu.gs = {0x0003, 0, false};  // a null selector keeps its RPL
  memory.put_u64(kStack - 8, ~std::uint64_t{0});
  const Emulation emulation = run({0x0f, 0xa0});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "push fs");
  EXPECT_EQ(registers.rsp, kStack - 8);
  EXPECT_EQ(memory.get_u64(kStack - 8), 0x1bu);  // zero-extended over the whole slot
  EXPECT_EQ(run({0x0f, 0xa8}).mnemonic, "push gs");
  EXPECT_EQ(memory.get_u64(kStack - 16), 0x3u);
  EXPECT_EQ(registers.rsp, kStack - 16);
  EXPECT_EQ(registers.rip, kCode + 2);
}

TEST_F(HoleTest, PushGsWithOperandSizePrefixPushesAWord) {
  cpu.gs = {fakes::kKernelDataSelector, 0, true};
  memory.put_u64(kStack - 8, ~std::uint64_t{0});
  run({0x66, 0x0f, 0xa8});
  EXPECT_EQ(registers.rsp, kStack - 2);
  EXPECT_EQ(memory.get_u64(kStack - 8), 0x0010'ffff'ffff'ffffull);
}

TEST_F(HoleTest, PushFsToAnUnmappedStackReflectsAPageFault) {
  memory.unmap_page(kStack - 8);
  const Emulation emulation = run({0x0f, 0xa0});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kStack - 8));
  EXPECT_EQ(registers.rsp, kStack);
}

TEST_F(HoleTest, AnOrdinaryPushIsNotEmulated) {
  // push rax faulted on its own account (here a stack fault): its trap is
  // the answer; nothing is pushed.
  registers.rsp = 0x0000800000000008ull;
  place({0x50});
  const Emulation emulation =
      emulate_privileged(registers, cpu, memory, services, Event{kVectorStackFault, 0u});
  EXPECT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorStackFault);
  EXPECT_EQ(memory.write_count(), 0u);
}

// --- mov from a segment register -------------------------------------------------

TEST_F(HoleTest, MovFromSegmentRegistersGivesTheVirtualSelectors) {
  cpu.cs = fakes::kKernelCodeSelector;
  cpu.ss = 0;  // null, as event delivery leaves it
  cpu.ds = {fakes::kUserDataSelector, 3, true};
  cpu.es = {0, 0, false};
  cpu.fs = {fakes::kKernelDataSelector, 0, true};
  cpu.gs = {0x0003, 0, false};

  registers.rax = ~std::uint64_t{0};
  Emulation emulation = run({0x8c, 0xc8});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "mov eax, cs");
  EXPECT_EQ(registers.rax, 0x08u);  // 32-bit destination: zero-extended to 64
  EXPECT_EQ(registers.rip, kCode + 2);

  registers.rax = 0xffff'ffff'ffff'0000ull;
  registers.rbx = 0x1234;
  EXPECT_EQ(run({0x66, 0x8c, 0xd3}).mnemonic, "mov bx, ss");
  EXPECT_EQ(registers.rbx, 0u);  // the word only
  registers.rax = 0xffff'ffff'ffff'ffffull;
  EXPECT_EQ(run({0x66, 0x8c, 0xd8}).mnemonic, "mov ax, ds");
  EXPECT_EQ(registers.rax, 0xffff'ffff'ffff'001bull);  // the upper bits stay
  registers.rax = ~std::uint64_t{0};
  EXPECT_EQ(run({0x48, 0x8c, 0xd8}).mnemonic, "mov rax, ds");
  EXPECT_EQ(registers.rax, 0x1bu);
  registers.rcx = ~std::uint64_t{0};
  run({0x8c, 0xc1});  // mov ecx, es
  EXPECT_EQ(registers.rcx, 0u);
  registers.rdx = ~std::uint64_t{0};
  run({0x8c, 0xe2});  // mov edx, fs
  EXPECT_EQ(registers.rdx, 0x10u);
  registers.r11 = ~std::uint64_t{0};
  run({0x41, 0x8c, 0xeb});  // mov r11d, gs
  EXPECT_EQ(registers.r11, 0x3u);
}

TEST_F(HoleTest, MovFromSegmentRegisterToMemoryStoresAWord) {
  cpu.ss = fakes::kKernelDataSelector;
  memory.put_u64(kData, 0x1111'1111'1111'1111ull);
  registers.rax = kData;
  const Emulation emulation = run({0x8c, 0x10});
  EXPECT_EQ(emulation.mnemonic, "mov [rax], ss");
  EXPECT_EQ(memory.get_u64(kData), 0x1111'1111'1111'0010ull);
  // REX.W makes the register form 64 bits, never the memory form.
  memory.put_u64(kData + 8, 0x1111'1111'1111'1111ull);
  cpu.cs = fakes::kKernelCodeSelector;
  registers.rax = kData + 8;
  run({0x48, 0x8c, 0x08});  // mov [rax], cs
  EXPECT_EQ(memory.get_u64(kData + 8), 0x1111'1111'1111'0008ull);
}

TEST_F(HoleTest, MovFromSegmentRegisterToAReadOnlyPageReflectsAPageFault) {
  memory.make_read_only(kData);
  registers.rax = kData;
  const Emulation emulation = run({0x8c, 0x18});  // mov [rax], ds
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultPresent | kPageFaultWrite);
  EXPECT_EQ(registers.rip, kCode);
  registers.rax = 0x0000800000000000ull;  // not canonical: #GP(0)
  expect_general_protection(run({0x8c, 0x18}));
}

TEST_F(HoleTest, MovToASegmentRegisterIsWhatMovFromGivesBack) {
  registers.rax = fakes::kUserDataSelector;  // DPL3 data: CPL0 may load it
  run({0x8e, 0xd8});                         // mov ds, ax
  EXPECT_EQ(cpu.ds.selector, fakes::kUserDataSelector);
  EXPECT_EQ(cpu.ds.privilege_level, 3);
  EXPECT_TRUE(cpu.ds.data_or_nonconforming_code);
  registers.rax = 0;
  run({0x8e, 0xe8});  // mov gs, ax: null
  EXPECT_EQ(cpu.gs.selector, 0);
  EXPECT_FALSE(cpu.gs.data_or_nonconforming_code);
  registers.rbx = ~std::uint64_t{0};
  run({0x8c, 0xdb});  // mov ebx, ds
  EXPECT_EQ(registers.rbx, fakes::kUserDataSelector);
  // A load that faults leaves the register as it was.
  enter_user_mode();
  registers.rax = fakes::kKernelDataSelector;
  expect_general_protection(run({0x8e, 0xc0}), 0x10);      // mov es, ax: DPL0 from CPL3
  EXPECT_EQ(cpu.es.selector, fakes::kKernelDataSelector);  // the fixture's default, kept
}

// --- lar ------------------------------------------------------------------------

TEST_F(HoleTest, LarOfTheKernelCodeSegment) {
  registers.rflags = kRflagsFixed | kRflagsCarry;
  registers.rcx = 0xffff'0000'0000'0000ull | fakes::kKernelCodeSelector;  // bits 15:0 count
  registers.rax = ~std::uint64_t{0};
  const Emulation emulation = run({0x0f, 0x02, 0xc1});
  EXPECT_EQ(emulation.kind, EmulationKind::Emulated);
  EXPECT_EQ(emulation.mnemonic, "lar eax, ecx");
  EXPECT_EQ(registers.rax, kKernelCodeRights);
  EXPECT_EQ(registers.rflags, 0x2u | 0x1u | 0x40u);  // ZF set, CF untouched
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(HoleTest, LarOperandSizes) {
  registers.rcx = fakes::kKernelDataSelector;
  registers.rax = ~std::uint64_t{0};
  run({0x66, 0x0f, 0x02, 0xc1});  // lar ax, cx: masked by FF00H, upper bits stay
  EXPECT_EQ(registers.rax, 0xffff'ffff'ffff'9200ull);
  registers.rax = ~std::uint64_t{0};
  run({0x48, 0x0f, 0x02, 0xc1});  // lar rax, ecx: zero-extended
  EXPECT_EQ(registers.rax, kKernelDataRights);
}

TEST_F(HoleTest, LarFromMemoryReadsASixteenBitSelector) {
  memory.put_u64(kData, 0xffff'ffff'ffff'0000ull | fakes::kUserDataSelector);
  registers.rbx = kData;
  const Emulation emulation = run_expecting_zero_flag({0x0f, 0x02, 0x03}, true);
  EXPECT_EQ(emulation.mnemonic, "lar eax, word ptr [rbx]");
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, kUserDataRights);

  registers.rbx = 0x0000800000000000ull;  // not canonical: #GP(0)
  expect_general_protection(run({0x0f, 0x02, 0x03}));
  memory.unmap_page(kData);
  registers.rbx = kData;
  const Emulation unmapped = run({0x0f, 0x02, 0x03});
  EXPECT_EQ(unmapped.event.vector, kVectorPageFault);
  EXPECT_EQ(unmapped.event.fault_address, GuestVirtAddr(kData));
}

TEST_F(HoleTest, LarOfANullSelectorClearsZfAndKeepsTheDestination) {
  registers.rax = 0x1234;
  for (const std::uint64_t selector : {0x0ull, 0x3ull}) {
    registers.rcx = selector;
    EXPECT_EQ(run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false).kind, EmulationKind::Emulated);
    EXPECT_FALSE(zero_flag()) << selector;
    EXPECT_EQ(registers.rax, 0x1234u);
  }
}

TEST_F(HoleTest, LarChecksDplAgainstCplAndRpl) {
  enter_user_mode();
  registers.rax = 0x1234;
  registers.rcx = 0x13;  // kernel data, RPL 3: DPL0 < CPL3
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  EXPECT_EQ(registers.rax, 0x1234u);
  registers.rcx = fakes::kUserDataSelector;
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, kUserDataRights);

  cpu.cpl = 0;  // at CPL0 an RPL of 3 still hides a DPL0 segment
  registers.rcx = 0x0b;
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
}

TEST_F(HoleTest, LarOfSystemDescriptorsFollowsTheIa32eTable) {
  registers.rcx = fakes::kTssSelector;  // available 64-bit TSS: valid
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, kTssRights);
  enter_user_mode();  // its DPL is 0
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  cpu.cpl = 0;

  install_descriptor(kSpareSelector, 0x8b, 0x0, 0x67);  // busy 64-bit TSS: valid
  registers.rcx = kSpareSelector;
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);
  EXPECT_EQ(registers.rax, 0x8b00u);
  install_descriptor(kSpareSelector, 0xec, 0x0, 0);  // 64-bit call gate, DPL3: valid
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);
  EXPECT_EQ(registers.rax, 0xec00u);
  install_descriptor(kSpareSelector, 0x82, 0x0, 0xfff);  // LDT: not valid for lar in IA-32e mode
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  install_descriptor(kSpareSelector, 0x8e, 0x0, 0);  // 64-bit interrupt gate: never
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  registers.rcx = 0x30;  // the TSS descriptor's upper half (type 0)
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
}

TEST_F(HoleTest, LarOfAConformingSegmentSkipsThePrivilegeCheck) {
  install_descriptor(kSpareSelector, 0x9e, 0xa, 0xfffff);  // DPL0 conforming execute/read, G, L
  enter_user_mode();
  registers.rcx = kSpareSelector | 3;
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, 0x00a09e00u);
}

TEST_F(HoleTest, LarReportsANotPresentSegment) {
  install_descriptor(kSpareSelector, 0x12, 0x0, 0);  // P clear, DPL0 data, accessed clear
  registers.rcx = kSpareSelector;
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, 0x1200u);  // bit 15, P, reads 0
}

TEST_F(HoleTest, LarOutsideTheGdtOrInTheLdtClearsZf) {
  registers.rcx = kSpareSelector;  // the fixture's limit is 0x37
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  install_descriptor(kSpareSelector, 0x92, 0x0, 0);
  cpu.gdtr.limit = kSpareSelector + 3;  // half the descriptor inside the limit
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  registers.rcx = fakes::kKernelCodeSelector | 0x4;  // TI: the virtual CPU has a null LDTR
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
}

TEST_F(HoleTest, LarReflectsAPageFaultOnTheGdt) {
  cpu.gdtr.base = 0x60000;
  memory.unmap_page(0x60000);
  registers.rcx = fakes::kKernelCodeSelector;
  const Emulation emulation = run({0x0f, 0x02, 0xc1});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(0x60008));
  EXPECT_EQ(emulation.event.error_code, 0u);  // supervisor read, not present
  EXPECT_EQ(registers.rip, kCode);
}

// --- lsl ------------------------------------------------------------------------

TEST_F(HoleTest, LslScalesAPageGranularLimit) {
  registers.rcx = fakes::kKernelDataSelector;  // raw limit 0xfffff, G
  registers.rax = ~std::uint64_t{0};
  const Emulation emulation = run_expecting_zero_flag({0x0f, 0x03, 0xc1}, true);
  EXPECT_EQ(emulation.mnemonic, "lsl eax, ecx");
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, 0xffff'ffffu);
  registers.rax = ~std::uint64_t{0};
  run({0x66, 0x0f, 0x03, 0xc1});  // lsl ax, cx: the low word of the 32-bit limit
  EXPECT_EQ(registers.rax, ~std::uint64_t{0});
  install_descriptor(kSpareSelector, 0x92, 0x8, 0x12);  // raw limit 0x12, G
  registers.rcx = kSpareSelector;
  registers.rax = ~std::uint64_t{0};
  run({0x48, 0x0f, 0x03, 0xc1});  // lsl rax, ecx
  EXPECT_EQ(registers.rax, 0x12fffu);
  install_descriptor(kSpareSelector, 0x92, 0x0, 0x12345);  // byte-granular
  run({0x0f, 0x03, 0xc1});
  EXPECT_EQ(registers.rax, 0x12345u);
}

TEST_F(HoleTest, LslOfSystemDescriptorsFollowsTheIa32eTable) {
  registers.rcx = fakes::kTssSelector;
  run_expecting_zero_flag({0x0f, 0x03, 0xc1}, true);
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, fakes::kTssLimit);

  install_descriptor(kSpareSelector, 0x82, 0x0, 0xfff);  // LDT: valid for lsl
  registers.rcx = kSpareSelector;
  run_expecting_zero_flag({0x0f, 0x03, 0xc1}, true);
  EXPECT_EQ(registers.rax, 0xfffu);
  registers.rax = 0x1234;
  install_descriptor(kSpareSelector, 0xec, 0x0, 0x55);  // a call gate: not for lsl
  run_expecting_zero_flag({0x0f, 0x03, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  EXPECT_EQ(registers.rax, 0x1234u);
  // The upper half of the TSS descriptor reads as type 0, which the table
  // accepts: its "limit" is bits 15:0 of the base's upper half, here 0.
  registers.rcx = 0x30;
  run_expecting_zero_flag({0x0f, 0x03, 0xc1}, true);
  EXPECT_TRUE(zero_flag());
  EXPECT_EQ(registers.rax, 0u);
}

TEST_F(HoleTest, LslHidesAKernelSegmentFromUserMode) {
  enter_user_mode();
  registers.rax = 0x1234;
  registers.rcx = fakes::kKernelCodeSelector | 3;
  run_expecting_zero_flag({0x0f, 0x03, 0xc1}, false);
  EXPECT_FALSE(zero_flag());
  EXPECT_EQ(registers.rax, 0x1234u);
  registers.rcx = fakes::kUserCodeSelector;
  run_expecting_zero_flag({0x0f, 0x03, 0xc1}, true);
  EXPECT_EQ(registers.rax, 0xffff'ffffu);
}

// --- verr, verw -------------------------------------------------------------------

TEST_F(HoleTest, VerrAndVerwOfTheFixturesSegments) {
  registers.rcx = fakes::kKernelCodeSelector;
  EXPECT_EQ(run_expecting_zero_flag({0x0f, 0x00, 0xe1}, true).mnemonic, "verr cx");
  EXPECT_TRUE(zero_flag());  // execute/read code
  EXPECT_EQ(run_expecting_zero_flag({0x0f, 0x00, 0xe9}, false).mnemonic, "verw cx");
  EXPECT_FALSE(zero_flag());  // code is never writable
  registers.rcx = fakes::kKernelDataSelector;
  run_expecting_zero_flag({0x0f, 0x00, 0xe9}, true);
  EXPECT_TRUE(zero_flag());
  registers.rcx = fakes::kTssSelector;  // a system segment: neither
  run_expecting_zero_flag({0x0f, 0x00, 0xe1}, false);
  EXPECT_FALSE(zero_flag());
  registers.rcx = 0;
  run_expecting_zero_flag({0x0f, 0x00, 0xe1}, false);
  EXPECT_FALSE(zero_flag());
  EXPECT_EQ(registers.rip, kCode + 3);
}

TEST_F(HoleTest, VerrOfAnExecuteOnlyCodeSegmentFails) {
  install_descriptor(kSpareSelector, 0x98, 0xa, 0xfffff);  // execute-only
  registers.rcx = kSpareSelector;
  run_expecting_zero_flag({0x0f, 0x00, 0xe1}, false);
  EXPECT_FALSE(zero_flag());
  run_expecting_zero_flag({0x0f, 0x02, 0xc1}, true);  // lar still sees it
  EXPECT_TRUE(zero_flag());
}

TEST_F(HoleTest, VerwOfAReadOnlyDataSegmentFails) {
  install_descriptor(kSpareSelector, 0x90, 0xc, 0xfffff);  // read-only data
  registers.rcx = kSpareSelector;
  run_expecting_zero_flag({0x0f, 0x00, 0xe9}, false);
  EXPECT_FALSE(zero_flag());
  run_expecting_zero_flag({0x0f, 0x00, 0xe1}, true);
  EXPECT_TRUE(zero_flag());
}

TEST_F(HoleTest, VerrAndVerwFromUserMode) {
  enter_user_mode();
  registers.rcx = fakes::kKernelDataSelector | 3;  // DPL0
  run_expecting_zero_flag({0x0f, 0x00, 0xe9}, false);
  EXPECT_FALSE(zero_flag());
  registers.rcx = fakes::kUserDataSelector;
  run_expecting_zero_flag({0x0f, 0x00, 0xe9}, true);
  EXPECT_TRUE(zero_flag());
  // A DPL0 conforming readable code segment: verr passes from CPL3, verw not.
  install_descriptor(kSpareSelector, 0x9e, 0xa, 0xfffff);
  registers.rcx = kSpareSelector | 3;
  run_expecting_zero_flag({0x0f, 0x00, 0xe1}, true);
  EXPECT_TRUE(zero_flag());
  run_expecting_zero_flag({0x0f, 0x00, 0xe9}, false);
  EXPECT_FALSE(zero_flag());
}

TEST_F(HoleTest, VerwFromMemory) {
  memory.put_u16(kData, fakes::kUserDataSelector);
  registers.rax = kData;
  EXPECT_EQ(run_expecting_zero_flag({0x0f, 0x00, 0x28}, true).mnemonic, "verw [rax]");
  EXPECT_TRUE(zero_flag());
  memory.unmap_page(kData);
  const Emulation emulation = run({0x0f, 0x00, 0x28});
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
}

// --- sgdt, sidt, sldt, str, smsw: the call-out, UMIP off --------------------------

TEST_F(HoleTest, TableStoresAtCpl0WriteTenBytesWhateverThePrefix) {
  cpu.gdtr = {0xffff'8000'0000'1000ull, 0x37};
  cpu.idtr = {0xffff'8000'0000'2000ull, 0xfff};
  memory.put_u64(kData + 8, 0x5555'5555'5555'5555ull);
  registers.rax = kData;
  EXPECT_EQ(run({0x0f, 0x01, 0x08}).mnemonic, "sidt [rax]");
  EXPECT_EQ(memory.get_u16(kData), 0xfff);
  EXPECT_EQ(memory.get_u64(kData + 2), 0xffff'8000'0000'2000ull);
  EXPECT_EQ(memory.get_u64(kData + 8) >> 16, 0x5555'5555'5555u);  // bytes 10 on untouched
  run({0x66, 0x0f, 0x01, 0x00});  // sgdt: the operand size is fixed in 64-bit mode
  EXPECT_EQ(memory.get_u16(kData), 0x37);
  EXPECT_EQ(memory.get_u64(kData + 2), 0xffff'8000'0000'1000ull);
  EXPECT_EQ(registers.rip, kCode + 4);
}

TEST_F(HoleTest, SldtAndStrRegisterAndMemoryForms) {
  cpu.ldtr = 0;
  cpu.tr = fakes::kTssSelector;
  registers.rax = ~std::uint64_t{0};
  EXPECT_EQ(run({0x0f, 0x00, 0xc0}).mnemonic, "sldt eax");
  EXPECT_EQ(registers.rax, 0u);
  registers.rax = ~std::uint64_t{0};
  run({0x66, 0x0f, 0x00, 0xc8});  // str ax
  EXPECT_EQ(registers.rax, 0xffff'ffff'ffff'0028ull);
  registers.rax = ~std::uint64_t{0};
  run({0x48, 0x0f, 0x00, 0xc8});  // str rax
  EXPECT_EQ(registers.rax, 0x28u);
  memory.put_u64(kData, ~std::uint64_t{0});
  registers.rbx = kData;
  EXPECT_EQ(run({0x48, 0x0f, 0x00, 0x0b}).mnemonic, "str [rbx]");
  EXPECT_EQ(memory.get_u64(kData), 0xffff'ffff'ffff'0028ull);
  run({0x0f, 0x00, 0x03});  // sldt [rbx]
  EXPECT_EQ(memory.get_u64(kData), 0xffff'ffff'ffff'0000ull);
}

TEST_F(HoleTest, SmswRegisterAndMemoryForms) {
  cpu.cr0 = 0x8005'003bull;  // PG, AM, WP, NE, ET, TS, MP, PE
  registers.rax = ~std::uint64_t{0};
  run({0x66, 0x0f, 0x01, 0xe0});  // smsw ax: CR0[15:0]
  EXPECT_EQ(registers.rax, 0xffff'ffff'ffff'003bull);
  run({0x0f, 0x01, 0xe0});  // smsw eax: CR0[31:0], zero-extended
  EXPECT_EQ(registers.rax, 0x8005'003bull);
  registers.rax = ~std::uint64_t{0};
  run({0x48, 0x0f, 0x01, 0xe0});  // smsw rax: CR0[63:0]
  EXPECT_EQ(registers.rax, 0x8005'003bull);
  memory.put_u64(kData, ~std::uint64_t{0});
  registers.rax = kData;
  EXPECT_EQ(run({0x48, 0x0f, 0x01, 0x20}).mnemonic, "smsw [rax]");
  EXPECT_EQ(memory.get_u64(kData), 0xffff'ffff'ffff'003bull);  // 16 bits, not 64
}

TEST_F(HoleTest, UmipBindsOnlyAboveCpl0) {
  cpu.cr4 |= kCr4UserModeInstructionPrevention;
  cpu.tr = fakes::kTssSelector;
  registers.rax = 0;
  EXPECT_EQ(run({0x0f, 0x00, 0xc8}).kind, EmulationKind::Emulated);  // str eax at CPL0
  EXPECT_EQ(registers.rax, 0x28u);
  enter_user_mode();
  expect_general_protection(run({0x0f, 0x00, 0xc8}));
  cpu.cr4 &= ~kCr4UserModeInstructionPrevention;  // UMIP off: CPL3 gets the virtual values
  registers.rax = 0;
  EXPECT_EQ(run({0x0f, 0x00, 0xc8}).kind, EmulationKind::Emulated);
  EXPECT_EQ(registers.rax, 0x28u);
}

TEST_F(HoleTest, TableStoreToAnUnmappedPageReflectsAWriteFault) {
  memory.unmap_page(kData);
  registers.rax = kData;
  const Emulation emulation = run({0x0f, 0x01, 0x00});
  ASSERT_EQ(emulation.kind, EmulationKind::Reflect);
  EXPECT_EQ(emulation.event.vector, kVectorPageFault);
  EXPECT_EQ(emulation.event.error_code, kPageFaultWrite);
  EXPECT_EQ(emulation.event.fault_address, GuestVirtAddr(kData));
  EXPECT_EQ(registers.rip, kCode);
}

}  // namespace
}  // namespace vmlab::full
