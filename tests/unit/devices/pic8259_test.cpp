#include <vmlab/devices/pic8259.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace vmlab::devices {
namespace {

using Chip = Pic8259Pair::Chip;

constexpr std::uint64_t kCommand = 0;
constexpr std::uint64_t kData = 1;

class PicTest : public ::testing::Test {
 protected:
  PicTest() : m_pic([this](bool level) { m_outputs.push_back(level); }) {}

  void out(Chip chip, std::uint64_t port, std::uint8_t value) {
    IoDevice& device = chip == Chip::Master ? m_pic.master_ports() : m_pic.slave_ports();
    device.write(port, std::span<const std::uint8_t>(&value, 1));
  }
  std::uint8_t in(Chip chip, std::uint64_t port) {
    IoDevice& device = chip == Chip::Master ? m_pic.master_ports() : m_pic.slave_ports();
    std::uint8_t value = 0;
    device.read(port, std::span<std::uint8_t>(&value, 1));
    return value;
  }

  // The initialization Linux's init_8259A() performs (arch/x86/kernel/i8259.c):
  // edge triggered, cascade, ICW4; vectors 0x20 and 0x28; slave on IR2.
  void initialize(std::uint8_t master_icw4 = 0x01) {
    out(Chip::Master, kData, 0xff);
    out(Chip::Slave, kData, 0xff);
    out(Chip::Master, kCommand, 0x11);
    out(Chip::Master, kData, 0x20);
    out(Chip::Master, kData, 0x04);
    out(Chip::Master, kData, master_icw4);
    out(Chip::Slave, kCommand, 0x11);
    out(Chip::Slave, kData, 0x28);
    out(Chip::Slave, kData, 0x02);
    out(Chip::Slave, kData, 0x01);
    out(Chip::Master, kData, 0x00);
    out(Chip::Slave, kData, 0x00);
  }

  void pulse(unsigned line) {
    m_pic.set_irq(line, true);
    m_pic.set_irq(line, false);
  }

  // Pulses `line` and takes the interrupt: the vector the INTA cycle returns.
  std::uint8_t interrupt(unsigned line) {
    pulse(line);
    return m_pic.acknowledge();
  }

  void end_of_interrupt(Chip chip) { out(chip, kCommand, 0x20); }

  // A request waits behind the level in service: nothing is delivered until
  // `chip` gets its EOI, and then `vector` is.
  void expect_held_until_eoi(Chip chip, std::uint8_t vector) {
    EXPECT_FALSE(m_pic.interrupt_pending());
    end_of_interrupt(chip);
    EXPECT_EQ(m_pic.acknowledge(), vector);
  }

  Pic8259Pair m_pic;
  std::vector<bool> m_outputs;
};

TEST_F(PicTest, PowerOnStateIsTheIcw1ResetStateWithVectorBaseZero) {
  EXPECT_FALSE(m_pic.initialized(Chip::Master));
  EXPECT_EQ(m_pic.vector_base(Chip::Master), 0x00);
  EXPECT_EQ(m_pic.mask_register(Chip::Master), 0x00);
  EXPECT_EQ(in(Chip::Master, kData), 0x00);
  pulse(0);
  ASSERT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x00);
  end_of_interrupt(Chip::Master);
  pulse(8);                              // cascaded on IR2 from power-on, like KVM's PIC
  EXPECT_EQ(m_pic.acknowledge(), 0x00);  // slave base 0, line 0 of the slave
}

TEST_F(PicTest, InitializationSequenceSetsBasesAndClearsMasks) {
  initialize();
  EXPECT_TRUE(m_pic.initialized(Chip::Master));
  EXPECT_TRUE(m_pic.initialized(Chip::Slave));
  EXPECT_EQ(m_pic.vector_base(Chip::Master), 0x20);
  EXPECT_EQ(m_pic.vector_base(Chip::Slave), 0x28);
  out(Chip::Master, kData, 0xfb);
  EXPECT_EQ(in(Chip::Master, kData), 0xfb);
  EXPECT_EQ(m_pic.mask_register(Chip::Master), 0xfb);
}

TEST_F(PicTest, Icw2LowBitsAreIgnoredIn8086Mode) {
  out(Chip::Master, kCommand, 0x13);  // single, ICW4
  out(Chip::Master, kData, 0x47);
  out(Chip::Master, kData, 0x01);  // ICW4 directly: no ICW3 in single mode
  EXPECT_TRUE(m_pic.initialized(Chip::Master));
  EXPECT_EQ(m_pic.vector_base(Chip::Master), 0x40);
  out(Chip::Master, kData, 0x00);  // now OCW1
  EXPECT_EQ(interrupt(1), 0x41);
}

TEST_F(PicTest, LowerNumberedLineHasPriorityAndEoiReleasesTheNext) {
  initialize();
  pulse(3);
  pulse(1);
  EXPECT_EQ(m_pic.request_register(Chip::Master), 0x0a);
  EXPECT_EQ(m_pic.acknowledge(), 0x21);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x02);
  EXPECT_FALSE(m_pic.interrupt_pending());  // IR3 is lower than IR1 in service
  end_of_interrupt(Chip::Master);
  EXPECT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x23);
  end_of_interrupt(Chip::Master);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x00);
  EXPECT_FALSE(m_pic.interrupt_pending());
}

TEST_F(PicTest, HigherPriorityNestsAndNonSpecificEoiClearsTheHighest) {
  initialize();
  EXPECT_EQ(interrupt(3), 0x23);
  pulse(0);
  ASSERT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x20);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x09);
  end_of_interrupt(Chip::Master);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x08);
  end_of_interrupt(Chip::Master);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x00);
}

TEST_F(PicTest, SameLevelWaitsForItsEoi) {
  initialize();
  EXPECT_EQ(interrupt(1), 0x21);
  pulse(1);  // a new edge while IR1 is in service: latched, not delivered
  EXPECT_EQ(m_pic.request_register(Chip::Master), 0x02);
  expect_held_until_eoi(Chip::Master, 0x21);
}

TEST_F(PicTest, SpecificEoiClearsTheNamedLevel) {
  initialize();
  pulse(3);
  m_pic.acknowledge();
  pulse(0);
  m_pic.acknowledge();
  out(Chip::Master, kCommand, 0x63);  // specific EOI, level 3
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x01);
}

TEST_F(PicTest, MaskedRequestStaysInIrrUntilUnmasked) {
  initialize();
  out(Chip::Master, kData, 0x02);
  pulse(1);
  EXPECT_EQ(m_pic.request_register(Chip::Master), 0x02);
  EXPECT_FALSE(m_pic.interrupt_pending());
  out(Chip::Master, kData, 0x00);
  EXPECT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x21);
}

TEST_F(PicTest, EdgeTriggeredLineMustFallBeforeItRequestsAgain) {
  initialize();
  m_pic.set_irq(4, true);
  EXPECT_EQ(m_pic.acknowledge(), 0x24);
  end_of_interrupt(Chip::Master);
  m_pic.set_irq(4, true);  // still high: no new edge
  EXPECT_FALSE(m_pic.interrupt_pending());
  m_pic.set_irq(4, false);
  EXPECT_FALSE(m_pic.interrupt_pending());
  m_pic.set_irq(4, true);
  EXPECT_TRUE(m_pic.interrupt_pending());
}

TEST_F(PicTest, EdgeIsLatchedEvenIfTheLineFallsBeforeAcknowledge) {
  initialize();
  pulse(0);  // what the PIT does for every tick
  EXPECT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x20);
}

TEST_F(PicTest, SpuriousMasterInterruptIsIrq7WithoutIsr) {
  initialize();
  EXPECT_FALSE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x27);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x00);
}

TEST_F(PicTest, CascadeDeliversSlaveVectorAndSetsBothIsrs) {
  initialize();
  pulse(12);
  EXPECT_EQ(m_pic.request_register(Chip::Master), 0x04);
  ASSERT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x2c);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x04);
  EXPECT_EQ(m_pic.in_service_register(Chip::Slave), 0x10);
  // Linux EOIs the slave, then the master.
  end_of_interrupt(Chip::Slave);
  end_of_interrupt(Chip::Master);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x00);
  EXPECT_EQ(m_pic.in_service_register(Chip::Slave), 0x00);
  EXPECT_FALSE(m_pic.interrupt_pending());
}

TEST_F(PicTest, SecondSlaveRequestFollowsTheSlaveEoi) {
  initialize();
  pulse(9);
  EXPECT_EQ(interrupt(14), 0x29);
  EXPECT_FALSE(m_pic.interrupt_pending());
  end_of_interrupt(Chip::Slave);
  end_of_interrupt(Chip::Master);
  ASSERT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x2e);
}

TEST_F(PicTest, SlaveRequestsQueueBehindHigherMasterLevels) {
  initialize();
  EXPECT_EQ(interrupt(1), 0x21);
  pulse(8);  // IR2 ranks below IR1 in service
  expect_held_until_eoi(Chip::Master, 0x28);
}

TEST_F(PicTest, SpuriousSlaveInterruptIsIrq15WithMasterIsrSet) {
  initialize();
  pulse(10);
  out(Chip::Slave, kData, 0x04);  // the request goes away after the master latched IR2
  ASSERT_TRUE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.acknowledge(), 0x2f);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x04);
  EXPECT_EQ(m_pic.in_service_register(Chip::Slave), 0x00);
}

TEST_F(PicTest, Ocw3SelectsIrrOrIsrForCommandPortReads) {
  initialize();
  pulse(5);
  pulse(6);
  m_pic.acknowledge();
  EXPECT_EQ(in(Chip::Master, kCommand), 0x40);  // IRR is the default after ICW1
  out(Chip::Master, kCommand, 0x0b);
  EXPECT_EQ(in(Chip::Master, kCommand), 0x20);  // ISR
  out(Chip::Master, kCommand, 0x0a);
  EXPECT_EQ(in(Chip::Master, kCommand), 0x40);
}

TEST_F(PicTest, AutoEoiLeavesNothingInService) {
  initialize(0x03);  // 8086 mode, auto-EOI
  EXPECT_EQ(interrupt(1), 0x21);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x00);
  pulse(3);
  EXPECT_TRUE(m_pic.interrupt_pending());
}

TEST_F(PicTest, PollCommandAcknowledgesTheHighestRequest) {
  initialize();
  out(Chip::Master, kCommand, 0x0c);            // OCW3 poll
  EXPECT_EQ(in(Chip::Master, kCommand), 0x00);  // nothing pending
  pulse(6);
  out(Chip::Master, kCommand, 0x0c);
  EXPECT_EQ(in(Chip::Master, kCommand), 0x86);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x40);
  EXPECT_EQ(in(Chip::Master, kCommand), 0x00);  // the poll applies to one read only
}

TEST_F(PicTest, RotateOnNonSpecificEoiMakesTheServicedLevelLowest) {
  initialize();
  EXPECT_EQ(interrupt(1), 0x21);
  out(Chip::Master, kCommand, 0xa0);  // rotate on non-specific EOI
  pulse(1);
  pulse(5);
  EXPECT_EQ(m_pic.acknowledge(), 0x25);  // IR1 is now the lowest priority
}

TEST_F(PicTest, SetPriorityRotatesWithoutEoi) {
  initialize();
  out(Chip::Master, kCommand, 0xc3);  // IR3 lowest, so IR4 highest
  pulse(0);
  EXPECT_EQ(interrupt(4), 0x24);
}

TEST_F(PicTest, SpecialMaskModeLetsLowerLevelsThrough) {
  initialize();
  EXPECT_EQ(interrupt(1), 0x21);
  pulse(5);
  EXPECT_FALSE(m_pic.interrupt_pending());
  out(Chip::Master, kData, 0x02);     // mask the level in service
  out(Chip::Master, kCommand, 0x68);  // set special mask mode
  EXPECT_TRUE(m_pic.interrupt_pending());
  out(Chip::Master, kCommand, 0x48);  // reset special mask mode
  EXPECT_FALSE(m_pic.interrupt_pending());
}

TEST_F(PicTest, LevelTriggeredRequestFollowsTheLine) {
  out(Chip::Master, kCommand, 0x1b);  // level, single, ICW4
  out(Chip::Master, kData, 0x30);
  out(Chip::Master, kData, 0x01);
  m_pic.set_irq(3, true);
  EXPECT_TRUE(m_pic.interrupt_pending());
  m_pic.set_irq(3, false);
  EXPECT_FALSE(m_pic.interrupt_pending());
  m_pic.set_irq(3, true);
  EXPECT_EQ(m_pic.acknowledge(), 0x33);
  end_of_interrupt(Chip::Master);
  EXPECT_TRUE(m_pic.interrupt_pending());  // still high: requests again
}

TEST_F(PicTest, Icw1ClearsRequestsAndMasks) {
  initialize();
  out(Chip::Master, kData, 0xf0);
  pulse(1);
  m_pic.set_irq(3, true);
  m_pic.acknowledge();
  out(Chip::Master, kCommand, 0x11);
  EXPECT_EQ(m_pic.request_register(Chip::Master), 0x00);
  EXPECT_EQ(m_pic.in_service_register(Chip::Master), 0x00);
  EXPECT_EQ(m_pic.mask_register(Chip::Master), 0x00);
  out(Chip::Master, kData, 0x20);
  out(Chip::Master, kData, 0x04);
  out(Chip::Master, kData, 0x01);
  EXPECT_FALSE(m_pic.interrupt_pending());  // IR3 is high but made no new edge
}

TEST_F(PicTest, InterruptOutputCallbackReportsChanges) {
  initialize();
  m_outputs.clear();
  pulse(0);
  ASSERT_EQ(m_outputs.size(), 1u);
  EXPECT_TRUE(m_outputs.back());
  m_pic.acknowledge();
  ASSERT_EQ(m_outputs.size(), 2u);
  EXPECT_FALSE(m_outputs.back());
}

TEST_F(PicTest, OutOfRangeAndCascadeLinesAreIgnored) {
  initialize();
  m_pic.set_irq(16, true);
  m_pic.set_irq(1000, true);
  m_pic.set_irq(2, true);
  EXPECT_FALSE(m_pic.interrupt_pending());
  EXPECT_EQ(m_pic.request_register(Chip::Master), 0x00);
}

TEST_F(PicTest, WideAccessSplitsIntoCommandAndDataPorts) {
  initialize();
  out(Chip::Master, kData, 0x5a);
  std::uint8_t both[2] = {};
  m_pic.master_ports().read(0, both);
  EXPECT_EQ(both[0], 0x00);  // IRR
  EXPECT_EQ(both[1], 0x5a);  // IMR
}

}  // namespace
}  // namespace vmlab::devices
