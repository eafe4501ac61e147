// Event delivery into the guest kernel, checked byte by byte on the guest's
// stack: gates, stack switches, IST, the double-fault rules, SYSCALL.
#include "vmlab/monitor/event_delivery.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "fake_guest_memory.hpp"
#include "vmlab/cpu_mode.hpp"

namespace vmlab::monitor {
namespace {

using fakes::FakeGuestMemory;

constexpr std::uint64_t kGdt = 0x2000;
constexpr std::uint64_t kIdt = 0x3000;
constexpr std::uint64_t kTss = 0x5000;
constexpr std::uint64_t kKernelStackTop = 0x9000;       // TSS.RSP0
constexpr std::uint64_t kDoubleFaultStackTop = 0xb000;  // TSS.IST1
constexpr std::uint64_t kUserRip = 0x401234;
constexpr std::uint64_t kUserStack = 0x7ffe58;
constexpr std::uint8_t kTimerVector = 0x20;

constexpr std::uint64_t handler_for(std::uint8_t vector) {
  return 0x100000 + std::uint64_t{vector} * 0x10;
}

enum class GateKind : std::uint8_t { Interrupt = 0xe, Trap = 0xf };

class EventDeliveryTest : public ::testing::Test {
 protected:
  EventDeliveryTest() {
    cpu.gdtr = {kGdt, fakes::install_vmlab_gdt(memory, kGdt, kTss)};
    cpu.idtr = {kIdt, 256 * 16 - 1};
    cpu.tr = fakes::kTssSelector;
    cpu.tss_base = kTss;
    cpu.tss_limit = fakes::kTssLimit;
    memory.put_u64(kTss + 4, kKernelStackTop);
    memory.put_u64(kTss + 0x24, kDoubleFaultStackTop);
    // As cpu_init: every vector an interrupt gate, DPL0; #DF on IST1.
    for (unsigned vector = 0; vector < 256; ++vector) {
      install_gate(static_cast<std::uint8_t>(vector), GateKind::Interrupt, 0,
                   vector == kVectorDoubleFault ? 1 : 0);
    }
    registers.rip = 0x104000;
    registers.rsp = 0x8ff8;
    registers.rflags = 0x246;
  }

  // Intel SDM vol. 3A, 6.14.1, Figure 6-8.
  void install_gate(std::uint8_t vector, GateKind kind, std::uint8_t privilege_level,
                    std::uint8_t stack_index, bool present = true,
                    std::uint16_t selector = fakes::kKernelCodeSelector) {
    const std::uint64_t handler = handler_for(vector);
    const std::uint64_t attributes = (present ? 0x80u : 0u) |
                                     static_cast<unsigned>(privilege_level << 5) |
                                     static_cast<std::uint8_t>(kind);
    const std::uint64_t low = (handler & 0xffff) | (std::uint64_t{selector} << 16) |
                              (std::uint64_t{stack_index} << 32) | (attributes << 40) |
                              (((handler >> 16) & 0xffff) << 48);
    memory.put_u64(kIdt + vector * 16u, low);
    memory.put_u64(kIdt + vector * 16u + 8, handler >> 32);
  }

  void enter_user_mode() {
    cpu.cpl = 3;
    cpu.cs = fakes::kUserCodeSelector;
    cpu.ss = fakes::kUserDataSelector;
    registers.rip = kUserRip;
    registers.rsp = kUserStack;
  }

  // The timer interrupt from the controller; true once the guest is at a
  // handler (the timer's, or that of the fault delivering it raised).
  bool deliver_timer_interrupt() {
    return deliver_event(registers, cpu, memory, kTimerVector, std::nullopt,
                         EventSource::ExternalInterrupt)
        .ok();
  }

  std::vector<std::uint64_t> stack_words(std::size_t count) const {
    std::vector<std::uint64_t> words;
    for (std::size_t index = 0; index < count; ++index) {
      words.push_back(memory.get_u64(registers.rsp + 8 * index));
    }
    return words;
  }

  FakeGuestMemory memory;
  GuestRegisters registers;
  VirtualCpu cpu;
};

TEST_F(EventDeliveryTest, PageFaultFromUserSwitchesToRsp0WithErrorCode) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  const Event fault{kVectorPageFault, 0x6u, EventSource::Exception, GuestVirtAddr(0x500000)};
  ASSERT_TRUE(deliver_event(registers, cpu, memory, fault).ok());
  EXPECT_EQ(cpu.cr2, 0x500000u);
  EXPECT_EQ(registers.rsp, kKernelStackTop - 48);
  const std::vector<std::uint64_t> expected{0x6,   kUserRip,   fakes::kUserCodeSelector,
                                            0x246, kUserStack, fakes::kUserDataSelector};
  EXPECT_EQ(stack_words(6), expected);
  EXPECT_EQ(registers.rip, handler_for(kVectorPageFault));
  EXPECT_EQ(cpu.cpl, 0);
  EXPECT_EQ(cpu.cs, fakes::kKernelCodeSelector);
  EXPECT_EQ(cpu.ss, 0);  // null SS after a privilege change in 64-bit mode
  EXPECT_FALSE(cpu.interrupt_flag);
  EXPECT_EQ(registers.rflags & kRflagsInterrupt, 0u);
}

TEST_F(EventDeliveryTest, PushedRflagsCarryTheVirtualInterruptFlagAndIopl) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  cpu.iopl = 3;
  registers.rflags =
      0x2 | kRflagsTrap | kRflagsNestedTask;  // real IF/IOPL bits are not the guest's
  ASSERT_TRUE(
      deliver_event(registers, cpu, memory, kVectorGeneralProtection, 0u, EventSource::Exception)
          .ok());
  EXPECT_EQ(stack_words(4)[3], 0x2u | kRflagsTrap | kRflagsNestedTask | kRflagsInterrupt | 0x3000);
  EXPECT_EQ(registers.rflags & (kRflagsTrap | kRflagsNestedTask), 0u);  // cleared on entry
  EXPECT_EQ(cpu.iopl, 3);  // delivery leaves IOPL alone
}

TEST_F(EventDeliveryTest, InterruptFromKernelStaysOnTheAlignedStack) {
  cpu.interrupt_flag = true;
  cpu.halted = true;
  ASSERT_TRUE(deliver_timer_interrupt());
  EXPECT_EQ(registers.rsp, 0x8ff0u - 40);  // aligned down to 16, then five words
  const std::vector<std::uint64_t> expected{0x104000, fakes::kKernelCodeSelector, 0x246, 0x8ff8,
                                            fakes::kKernelDataSelector};
  EXPECT_EQ(stack_words(5), expected);
  EXPECT_EQ(cpu.ss, fakes::kKernelDataSelector);  // no privilege change: SS kept
  EXPECT_EQ(registers.rip, handler_for(kTimerVector));
  EXPECT_FALSE(cpu.interrupt_flag);
  EXPECT_FALSE(cpu.halted);
}

TEST_F(EventDeliveryTest, TrapGateKeepsInterruptsEnabled) {
  install_gate(kTimerVector, GateKind::Trap, 0, 0);
  cpu.interrupt_flag = true;
  ASSERT_TRUE(deliver_timer_interrupt());
  EXPECT_TRUE(cpu.interrupt_flag);
}

TEST_F(EventDeliveryTest, DoubleFaultUsesItsInterruptStack) {
  registers.rsp = 0x8123;
  cpu.interrupt_flag = false;  // pushed RFLAGS show the virtual IF, not regs.rflags' bit 9
  ASSERT_TRUE(
      deliver_event(registers, cpu, memory, kVectorDoubleFault, 0u, EventSource::Exception).ok());
  EXPECT_EQ(registers.rsp, kDoubleFaultStackTop - 48);
  const std::vector<std::uint64_t> expected{0,    0x104000, fakes::kKernelCodeSelector,
                                            0x46, 0x8123,   fakes::kKernelDataSelector};
  EXPECT_EQ(stack_words(6), expected);
  EXPECT_EQ(registers.rip, handler_for(kVectorDoubleFault));
}

TEST_F(EventDeliveryTest, SoftwareInterruptChecksTheGatePrivilege) {
  enter_user_mode();
  constexpr std::uint8_t kVector = 0x80;
  // A DPL0 gate: #GP(vector * 8 + 2), EXT clear, RIP still at the int.
  ASSERT_TRUE(deliver_event(registers, cpu, memory,
                            Event{kVector, std::nullopt, EventSource::Software, {}, 2})
                  .ok());
  EXPECT_EQ(registers.rip, handler_for(kVectorGeneralProtection));
  EXPECT_EQ(stack_words(2), (std::vector<std::uint64_t>{kVector * 8u + 2, kUserRip}));

  enter_user_mode();
  install_gate(kVector, GateKind::Trap, 3, 0);
  ASSERT_TRUE(deliver_event(registers, cpu, memory,
                            Event{kVector, std::nullopt, EventSource::Software, {}, 2})
                  .ok());
  EXPECT_EQ(registers.rip, handler_for(kVector));
  EXPECT_EQ(stack_words(1)[0], kUserRip + 2);  // past the int
  EXPECT_EQ(registers.rsp, kKernelStackTop - 40);
}

TEST_F(EventDeliveryTest, NotPresentGateBecomesSegmentNotPresent) {
  install_gate(kTimerVector, GateKind::Interrupt, 0, 0, false);
  ASSERT_TRUE(deliver_timer_interrupt());
  EXPECT_EQ(registers.rip, handler_for(kVectorSegmentNotPresent));
  // Error code: IDT index, IDT bit, EXT (an external event).
  EXPECT_EQ(stack_words(2), (std::vector<std::uint64_t>{kTimerVector * 8u + 2 + 1, 0x104000}));
}

TEST_F(EventDeliveryTest, VectorPastTheIdtLimitIsGeneralProtection) {
  cpu.idtr.limit = 0x30 * 16 - 1;
  ASSERT_TRUE(
      deliver_event(registers, cpu, memory, 0x40, std::nullopt, EventSource::ExternalInterrupt)
          .ok());
  EXPECT_EQ(registers.rip, handler_for(kVectorGeneralProtection));
  EXPECT_EQ(stack_words(1)[0], 0x40u * 8 + 3);
}

TEST_F(EventDeliveryTest, GateToADataSegmentIsGeneralProtection) {
  install_gate(kTimerVector, GateKind::Interrupt, 0, 0, true, fakes::kKernelDataSelector);
  ASSERT_TRUE(deliver_timer_interrupt());
  EXPECT_EQ(registers.rip, handler_for(kVectorGeneralProtection));
  EXPECT_EQ(stack_words(1)[0], fakes::kKernelDataSelector + 1u);
}

TEST_F(EventDeliveryTest, InterruptStackPastTheTssLimitIsInvalidTss) {
  install_gate(kTimerVector, GateKind::Interrupt, 0, 1);
  cpu.tss_limit = 0x0b;  // RSP0 only
  ASSERT_TRUE(deliver_timer_interrupt());
  EXPECT_EQ(registers.rip, handler_for(kVectorInvalidTss));
  EXPECT_EQ(stack_words(1)[0], fakes::kTssSelector + 1u);
}

TEST_F(EventDeliveryTest, PageFaultsOnTheStackBecomeADoubleFault) {
  // Interrupt (benign) -> #PF pushing its frame -> #PF again on the same
  // stack -> #DF, delivered on IST1 (Intel SDM vol. 3A, 6.15, Table 6-5).
  memory.unmap_page(0x8000);
  ASSERT_TRUE(deliver_timer_interrupt());
  EXPECT_EQ(registers.rip, handler_for(kVectorDoubleFault));
  EXPECT_EQ(registers.rsp, kDoubleFaultStackTop - 48);
  EXPECT_EQ(stack_words(2), (std::vector<std::uint64_t>{0, 0x104000}));
  EXPECT_EQ(cpu.cr2, 0x8ff0u - 8);  // the first push (SS) faulted
}

TEST_F(EventDeliveryTest, TwoContributoryFaultsBecomeADoubleFault) {
  install_gate(kVectorGeneralProtection, GateKind::Interrupt, 0, 0, false);
  ASSERT_TRUE(
      deliver_event(registers, cpu, memory, kVectorGeneralProtection, 0u, EventSource::Exception)
          .ok());
  EXPECT_EQ(registers.rip, handler_for(kVectorDoubleFault));
}

TEST_F(EventDeliveryTest, ContributoryThenPageFaultIsDeliveredSerially) {
  // An IDT placed so that the #GP gate is the last one on an unmapped page
  // and the #PF gate the first one on the next, mapped page.
  constexpr std::uint64_t kMovedIdt = 0x21000 - kVectorPageFault * 16u;
  for (unsigned vector = kVectorPageFault; vector < 256; ++vector) {
    memory.put_u64(kMovedIdt + vector * 16u, memory.get_u64(kIdt + vector * 16u));
    memory.put_u64(kMovedIdt + vector * 16u + 8, memory.get_u64(kIdt + vector * 16u + 8));
  }
  memory.unmap_page(0x20000);
  cpu.idtr.base = kMovedIdt;
  ASSERT_TRUE(
      deliver_event(registers, cpu, memory, kVectorGeneralProtection, 0u, EventSource::Exception)
          .ok());
  EXPECT_EQ(registers.rip, handler_for(kVectorPageFault));
  EXPECT_EQ(cpu.cr2, kMovedIdt + kVectorGeneralProtection * 16u);
  EXPECT_EQ(stack_words(2), (std::vector<std::uint64_t>{0, 0x104000}));  // supervisor read
}

TEST_F(EventDeliveryTest, FaultDeliveringADoubleFaultIsATripleFault) {
  install_gate(kVectorGeneralProtection, GateKind::Interrupt, 0, 0, false);
  install_gate(kVectorDoubleFault, GateKind::Interrupt, 0, 1, false);
  const Result<void> result =
      deliver_event(registers, cpu, memory, kVectorGeneralProtection, 0u, EventSource::Exception);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind, ModeError::kGuestTripleFault);
  EXPECT_EQ(registers.rip, 0x104000u);  // nothing was delivered
}

TEST_F(EventDeliveryTest, SyscallEntersTheKernelAsStarAndLstarSay) {
  enter_user_mode();
  cpu.interrupt_flag = true;
  cpu.star = 0x0013'0008'0000'0000ull;
  cpu.lstar = 0x103000;
  cpu.fmask = kRflagsInterrupt | kRflagsTrap | kRflagsDirection | kRflagsAlignmentCheck;
  registers.rip = kUserRip + 2;  // the caller passes the address after the syscall
  registers.rflags = 0x2 | kRflagsDirection | kRflagsZero;
  deliver_syscall(registers, cpu);
  EXPECT_EQ(registers.rcx, kUserRip + 2);
  EXPECT_EQ(registers.r11, 0x2 | kRflagsDirection | kRflagsZero | kRflagsInterrupt);
  EXPECT_EQ(registers.rip, 0x103000u);
  EXPECT_EQ(registers.rflags, 0x2 | kRflagsZero);
  EXPECT_FALSE(cpu.interrupt_flag);
  EXPECT_EQ(cpu.cpl, 0);
  EXPECT_EQ(cpu.cs, fakes::kKernelCodeSelector);
  EXPECT_EQ(cpu.ss, fakes::kKernelDataSelector);
  EXPECT_EQ(registers.rsp, kUserStack);  // SYSCALL does not switch stacks
}

TEST(SegmentDescriptorTest, DecodesTheGuestDescriptors) {
  const SegmentDescriptor code = decode_segment_descriptor(0x00af9a000000ffffull);
  EXPECT_TRUE(code.is_64bit_code());
  EXPECT_EQ(code.privilege_level, 0);
  EXPECT_TRUE(code.present);
  const SegmentDescriptor user_data = decode_segment_descriptor(0x00cff2000000ffffull);
  EXPECT_TRUE(user_data.is_writable_data());
  EXPECT_EQ(user_data.privilege_level, 3);
  EXPECT_EQ(user_data.limit, 0xffffffffu);
  const SegmentDescriptor tss =
      decode_segment_descriptor(0x0000891234560067ull | (0xabull << 56), 0xffff8000ull);
  EXPECT_TRUE(tss.system);
  EXPECT_EQ(tss.type, 0x9);
  EXPECT_EQ(tss.base, 0xffff8000'ab123456ull);
  EXPECT_EQ(tss.limit, 0x67u);
}

TEST(CanonicalTest, FortyEightAndFiftySevenBits) {
  VirtualCpu cpu;
  EXPECT_TRUE(is_canonical(GuestVirtAddr(0x00007fffffffffffull), cpu));
  EXPECT_FALSE(is_canonical(GuestVirtAddr(0x0000800000000000ull), cpu));
  EXPECT_TRUE(is_canonical(GuestVirtAddr(0xffff800000000000ull), cpu));
  cpu.cr4 |= 1u << 12;
  EXPECT_TRUE(is_canonical(GuestVirtAddr(0x0000800000000000ull), cpu));
  EXPECT_FALSE(is_canonical(GuestVirtAddr(0x0100000000000000ull), cpu));
}

}  // namespace
}  // namespace vmlab::monitor
