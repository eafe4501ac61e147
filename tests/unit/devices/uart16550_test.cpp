#include <vmlab/devices/uart16550.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vmlab::devices {
namespace {

// Register offsets, PC16550D Table II.
constexpr std::uint64_t kRbrThr = 0;
constexpr std::uint64_t kIer = 1;
constexpr std::uint64_t kIirFcr = 2;
constexpr std::uint64_t kLcr = 3;
constexpr std::uint64_t kMcr = 4;
constexpr std::uint64_t kLsr = 5;
constexpr std::uint64_t kMsr = 6;
constexpr std::uint64_t kScr = 7;

class UartTest : public ::testing::Test {
 protected:
  UartTest()
      : m_uart(
            [this](bool level) {
              if (level && !m_level) ++m_rising_edges;
              m_level = level;
            },
            [this](std::uint8_t byte) { m_transmitted.push_back(static_cast<char>(byte)); }) {}

  std::uint8_t in(std::uint64_t offset) {
    std::uint8_t value = 0;
    m_uart.read(offset, std::span<std::uint8_t>(&value, 1));
    return value;
  }
  void out(std::uint64_t offset, std::uint8_t value) {
    m_uart.write(offset, std::span<const std::uint8_t>(&value, 1));
  }

  Uart16550 m_uart;
  bool m_level = false;
  int m_rising_edges = 0;
  std::string m_transmitted;
};

TEST_F(UartTest, ResetValuesMatchTheDatasheet) {
  EXPECT_EQ(in(kIer), 0x00);
  EXPECT_EQ(in(kIirFcr), 0x01);  // no interrupt pending, FIFOs off
  EXPECT_EQ(in(kLcr), 0x00);
  EXPECT_EQ(in(kMcr), 0x00);
  EXPECT_EQ(in(kLsr), 0x60);  // THRE and TEMT
  EXPECT_EQ(in(kMsr), 0xb0);  // CTS, DSR, DCD asserted, no deltas
  EXPECT_FALSE(m_uart.irq_level());
}

TEST_F(UartTest, DivisorLatchSharesOffsetsZeroAndOne) {
  out(kIer, 0x05);
  out(kLcr, 0x83);  // DLAB, 8N1
  out(kRbrThr, 0x01);
  out(kIer, 0x00);
  EXPECT_EQ(in(kRbrThr), 0x01);
  EXPECT_EQ(in(kIer), 0x00);
  EXPECT_TRUE(m_transmitted.empty());  // a DLL write is not a transmission

  out(kLcr, 0x03);
  EXPECT_EQ(in(kIer), 0x05);  // IER kept its value under the latch
  out(kLcr, 0x80);
  std::uint8_t both[2] = {};
  m_uart.read(0, both);  // inw: DLL then DLM
  EXPECT_EQ(both[0], 0x01);
  EXPECT_EQ(both[1], 0x00);
}

TEST_F(UartTest, ScratchAndWritableBits) {
  out(kScr, 0x5a);
  EXPECT_EQ(in(kScr), 0x5a);
  out(kIer, 0xff);
  EXPECT_EQ(in(kIer), 0x0f);  // bits 7-4 are always zero
  out(kMcr, 0xff & ~0x10);
  EXPECT_EQ(in(kMcr), 0x0f);  // bits 7-5 are always zero
  out(kLsr, 0x00);            // read-only: ignored
  EXPECT_EQ(in(kLsr), 0x60);
}

TEST_F(UartTest, PolledTransmitDeliversEveryByte) {
  for (char character : std::string("Hello")) {
    ASSERT_NE(in(kLsr)&0x20, 0);  // THRE: the driver may write
    out(kRbrThr, static_cast<std::uint8_t>(character));
  }
  EXPECT_EQ(m_transmitted, "Hello");
  EXPECT_EQ(m_uart.bytes_transmitted(), 5u);
  EXPECT_EQ(in(kLsr), 0x60);  // transmission is instantaneous
}

TEST_F(UartTest, PolledReceiveSetsAndClearsDataReady) {
  m_uart.receive('a');
  EXPECT_EQ(in(kLsr), 0x61);
  EXPECT_EQ(in(kRbrThr), 'a');
  EXPECT_EQ(in(kLsr), 0x60);
  EXPECT_EQ(in(kRbrThr), 'a');  // RBR keeps its last byte
  EXPECT_EQ(m_uart.bytes_received(), 1u);
}

TEST_F(UartTest, OverrunWithoutFifoOverwritesAndReadingLsrClearsIt) {
  EXPECT_TRUE(m_uart.can_receive());
  m_uart.receive('a');
  EXPECT_FALSE(m_uart.can_receive());
  m_uart.receive('b');
  EXPECT_EQ(in(kLsr), 0x63);  // DR and OE
  EXPECT_EQ(in(kLsr), 0x61);  // OE cleared by the read
  EXPECT_EQ(in(kRbrThr), 'b');
  EXPECT_EQ(m_uart.overruns(), 1u);
}

TEST_F(UartTest, FifoHoldsSixteenBytesAndDropsTheSeventeenth) {
  out(kIirFcr, 0x07);  // enable and clear both FIFOs, trigger level 1
  EXPECT_EQ(in(kIirFcr), 0xc1);
  for (int index = 0; index < 17; ++index)
    m_uart.receive(static_cast<std::uint8_t>('A' + index));
  EXPECT_EQ(in(kLsr), 0x63);
  std::string received;
  while ((in(kLsr)&0x01) != 0)
    received.push_back(static_cast<char>(in(kRbrThr)));
  EXPECT_EQ(received, "ABCDEFGHIJKLMNOP");
}

TEST_F(UartTest, FifoClearAndDisableEmptyTheReceiver) {
  out(kIirFcr, 0x01);
  m_uart.receive('x');
  m_uart.receive('y');
  out(kIirFcr, 0x03);  // clear the receive FIFO
  EXPECT_EQ(in(kLsr)&0x01, 0);
  m_uart.receive('z');
  out(kIirFcr, 0x00);  // disabling the FIFOs clears them too
  EXPECT_EQ(in(kLsr)&0x01, 0);
  EXPECT_EQ(in(kIirFcr), 0x01);
}

TEST_F(UartTest, ReceiveTriggerLevelAndCharacterTimeout) {
  out(kMcr, 0x08);
  out(kIirFcr, 0xc7);  // trigger level 14
  out(kIer, 0x01);
  EXPECT_EQ(in(kIirFcr), 0xc1);
  for (int index = 0; index < 3; ++index)
    m_uart.receive('r');
  EXPECT_EQ(in(kIirFcr), 0xcc);  // below the trigger level: character timeout
  EXPECT_TRUE(m_uart.irq_level());
  for (int index = 0; index < 11; ++index)
    m_uart.receive('r');
  EXPECT_EQ(in(kIirFcr), 0xc4);  // at the trigger level: data available
  for (int index = 0; index < 14; ++index)
    in(kRbrThr);
  EXPECT_EQ(in(kIirFcr), 0xc1);
  EXPECT_FALSE(m_uart.irq_level());
}

TEST_F(UartTest, InterruptIdentificationFollowsThePriorityOrder) {
  out(kMcr, 0x08);
  out(kIer, 0x0f);
  // THRE is pending from enabling ETBEI; add received data and an overrun.
  m_uart.receive('1');
  m_uart.receive('2');
  EXPECT_EQ(in(kIirFcr), 0x06);  // line status first
  EXPECT_EQ(in(kIirFcr), 0x06);  // until LSR is read
  in(kLsr);
  EXPECT_EQ(in(kIirFcr), 0x04);  // then received data
  in(kRbrThr);
  EXPECT_EQ(in(kIirFcr), 0x02);  // then THRE, which this read clears
  EXPECT_EQ(in(kIirFcr), 0x01);
  // Modem status last: no delta bits have been set, so make one in loopback.
  out(kMcr, 0x10);
  EXPECT_EQ(in(kIirFcr), 0x00);
  in(kMsr);
  EXPECT_EQ(in(kIirFcr), 0x01);
}

TEST_F(UartTest, EnablingThreInterruptArmsItOnlyOnTheTransition) {
  out(kMcr, 0x0b);
  out(kIer, 0x02);
  EXPECT_TRUE(m_uart.irq_level());
  EXPECT_EQ(in(kIirFcr), 0x02);
  EXPECT_FALSE(m_uart.irq_level());
  out(kIer, 0x02);  // already enabled: no new interrupt
  EXPECT_EQ(in(kIirFcr), 0x01);
  out(kIer, 0x00);
  out(kIer, 0x02);  // re-enabled with THR empty: armed again
  EXPECT_EQ(in(kIirFcr), 0x02);
}

TEST_F(UartTest, Out2GatesTheInterruptOutput) {
  out(kIer, 0x02);
  EXPECT_EQ(in(kIirFcr)&0x0f, 0x02);  // the UART has an interrupt...
  out(kIer, 0x00);
  out(kIer, 0x02);
  EXPECT_FALSE(m_uart.irq_level());  // ...that does not reach the PIC
  out(kMcr, 0x08);
  EXPECT_TRUE(m_uart.irq_level());
  out(kMcr, 0x00);
  EXPECT_FALSE(m_uart.irq_level());
}

// The sequence Linux's 8250 driver uses for interrupt-driven output:
// start_tx sets IER.THRI; the interrupt handler loops on IIR, writes up to a
// FIFO's worth of bytes on each THRE, and clears IER.THRI when it runs out.
TEST_F(UartTest, InterruptDrivenTransmitLikeLinux8250) {
  out(kLcr, 0x03);
  out(kIirFcr, 0x07);
  out(kMcr, 0x0b);  // DTR, RTS, OUT2
  const std::string message = "interrupt-driven output, forty bytes...";
  std::size_t next = 0;

  out(kIer, 0x02);  // start_tx
  int interrupts = 0;
  while (m_level && interrupts < 100) {
    ++interrupts;
    // serial8250_handle_irq: read IIR until it reports no interrupt.
    for (;;) {
      const std::uint8_t identification = in(kIirFcr);
      ASSERT_EQ(identification & 0xc0, 0xc0);
      if ((identification & 0x01) != 0) break;
      ASSERT_EQ(identification & 0x0f, 0x02);
      // serial8250_tx_chars: up to 16 bytes, then stop_tx when done.
      for (int count = 0; count < 16 && next < message.size(); ++count) {
        out(kRbrThr, static_cast<std::uint8_t>(message[next++]));
      }
      if (next == message.size()) out(kIer, 0x00);
    }
  }
  EXPECT_EQ(m_transmitted, message);
  EXPECT_EQ(interrupts, 1);  // this handler drains everything in one interrupt
  EXPECT_FALSE(m_level);
  EXPECT_EQ(in(kIirFcr), 0xc1);
  // Each THR write re-raised the line after the IIR read dropped it.
  EXPECT_GE(m_rising_edges, 3);
}

TEST_F(UartTest, ThrWriteProducesAFreshEdgeForAnEdgeTriggeredPic) {
  out(kMcr, 0x08);
  out(kIer, 0x02);
  EXPECT_EQ(m_rising_edges, 1);
  EXPECT_EQ(in(kIirFcr), 0x02);  // handler acknowledges THRE
  EXPECT_FALSE(m_level);
  out(kRbrThr, 'x');  // and writes the next byte
  EXPECT_TRUE(m_level);
  EXPECT_EQ(m_rising_edges, 2);
}

TEST_F(UartTest, LoopbackRoutesTransmitToReceive) {
  out(kMcr, 0x1b);  // loopback with DTR, RTS, OUT2
  out(kIer, 0x01);
  out(kRbrThr, 'L');
  EXPECT_TRUE(m_transmitted.empty());
  EXPECT_EQ(in(kLsr)&0x01, 0x01);
  EXPECT_EQ(in(kIirFcr), 0x04);
  // In loopback OUT2 is disconnected from its pin: no IRQ on a PC.
  EXPECT_FALSE(m_uart.irq_level());
  EXPECT_EQ(in(kRbrThr), 'L');

  // Host input is disconnected in loopback.
  EXPECT_FALSE(m_uart.can_receive());
  m_uart.receive('H');
  EXPECT_EQ(in(kLsr)&0x01, 0);
}

TEST_F(UartTest, LoopbackModemLinesAsLinuxProbesThem) {
  // autoconfig(): MCR = LOOP | OUT2 | RTS must read back MSR & 0xf0 == 0x90.
  out(kMcr, 0x1a);
  EXPECT_EQ(in(kMsr)&0xf0, 0x90);
  out(kMcr, 0x15);                                 // LOOP | OUT1 | DTR
  EXPECT_EQ(in(kMsr), 0x60 | 0x01 | 0x02 | 0x08);  // DSR, RI; CTS, DSR, DCD changed
  out(kMcr, 0x10);                                 // RI falls: trailing edge
  EXPECT_EQ(in(kMsr), 0x04 | 0x02);
  EXPECT_EQ(in(kMsr), 0x00);
}

TEST_F(UartTest, IrqLineChangesAreReportedOnlyOnce) {
  int calls = 0;
  Uart16550 uart([&calls](bool) { ++calls; }, {});
  std::uint8_t value = 0x08;
  uart.write(kMcr, std::span<const std::uint8_t>(&value, 1));
  value = 0x02;
  uart.write(kIer, std::span<const std::uint8_t>(&value, 1));
  EXPECT_EQ(calls, 1);
  uart.write(kScr, std::span<const std::uint8_t>(&value, 1));
  EXPECT_EQ(calls, 1);
}

TEST_F(UartTest, WorksWithoutCallbacks) {
  Uart16550 uart({}, {});
  const std::uint8_t bytes[] = {0x08, 0x0f};
  uart.write(kMcr, std::span<const std::uint8_t>(&bytes[0], 1));
  uart.write(kIer, std::span<const std::uint8_t>(&bytes[1], 1));
  uart.write(kRbrThr, std::span<const std::uint8_t>(&bytes[0], 1));
  uart.receive('q');
  EXPECT_TRUE(uart.irq_level());
  EXPECT_EQ(uart.bytes_transmitted(), 1u);
}

}  // namespace
}  // namespace vmlab::devices
