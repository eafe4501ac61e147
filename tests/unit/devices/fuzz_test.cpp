// Whatever a guest writes, a device model must neither crash nor throw, and
// must keep the invariants its register interface promises.
#include <vmlab/devices/ata.hpp>
#include <vmlab/devices/debug_console.hpp>
#include <vmlab/devices/exit_port.hpp>
#include <vmlab/devices/memory_block_backend.hpp>
#include <vmlab/devices/pic8259.hpp>
#include <vmlab/devices/pit8254.hpp>
#include <vmlab/devices/rtc_mc146818.hpp>
#include <vmlab/devices/uart16550.hpp>

#include <gtest/gtest.h>

#include "byte_access.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include <vmlab/clock.hpp>

namespace vmlab::devices {
namespace {

constexpr int kIterations = 200'000;

// One random access and what it carried: the bytes written, or the bytes the
// device returned.
struct Access {
  bool is_read = false;
  std::uint64_t offset = 0;
  std::size_t width = 0;
  std::array<std::uint8_t, 8> data{};
};

class RandomAccesses {
 public:
  explicit RandomAccesses(std::uint64_t seed) : m_random(seed) {}

  std::uint64_t offset(std::uint64_t range) {
    // Mostly inside the device's range, sometimes just past it, rarely huge.
    const std::uint64_t choice = m_random() % 16;
    if (choice == 0) return std::numeric_limits<std::uint64_t>::max() - m_random() % 8;
    if (choice == 1) return range + m_random() % 8;
    return m_random() % range;
  }
  std::size_t width() {
    static constexpr std::array<std::size_t, 7> kWidths{1, 1, 1, 2, 4, 8, 3};
    return kWidths[m_random() % kWidths.size()];
  }
  std::uint64_t next() { return m_random(); }

  // Makes one access and checks what every device promises whatever the
  // guest does (io_device.hpp): it touches only the bytes of the access, and
  // a read leaves the bus's zero fill in the bytes past the device's range.
  Access access(IoDevice& device, std::uint64_t range) {
    // The access's bytes lie between guard bytes a model must not touch.
    constexpr std::uint8_t kGuard = 0xa5;
    constexpr std::size_t kGuardLength = 8;
    std::array<std::uint8_t, kGuardLength + 8 + kGuardLength> buffer{};
    buffer.fill(kGuard);
    Access record;
    record.width = width();
    record.offset = offset(range);
    record.is_read = m_random() % 2 == 0;
    const std::span<std::uint8_t> data(buffer.data() + kGuardLength, record.width);
    if (record.is_read) {
      std::fill(data.begin(), data.end(), std::uint8_t{0});  // the bus zero-fills reads
      device.read(record.offset, data);
      for (std::size_t index = 0; index < data.size(); ++index) {
        const bool past_range = record.offset >= range || index >= range - record.offset;
        if (past_range && data[index] != 0) ++m_bytes_read_past_range;
      }
    } else {
      for (std::uint8_t& byte : data)
        byte = static_cast<std::uint8_t>(m_random());
      device.write(record.offset, data);
    }
    std::copy(data.begin(), data.end(), record.data.begin());
    for (std::size_t index = 0; index < buffer.size(); ++index) {
      const bool inside = index >= kGuardLength && index < kGuardLength + record.width;
      if (!inside && buffer[index] != kGuard) ++m_guard_bytes_changed;
    }
    return record;
  }

  std::uint64_t bytes_read_past_range() const { return m_bytes_read_past_range; }
  std::uint64_t guard_bytes_changed() const { return m_guard_bytes_changed; }

 private:
  std::mt19937_64 m_random;
  std::uint64_t m_bytes_read_past_range = 0;
  std::uint64_t m_guard_bytes_changed = 0;
};

void expect_accesses_stayed_in_bounds(const RandomAccesses& random) {
  EXPECT_EQ(random.guard_bytes_changed(), 0u) << "a model wrote outside the access's bytes";
  EXPECT_EQ(random.bytes_read_past_range(), 0u)
      << "a read returned data for bytes past the device's range";
}

using testing::in;
using testing::out;

// UART register offsets (PC16550D Table II).
constexpr std::uint64_t kUartData = 0;  // RBR/THR, DLL with DLAB
constexpr std::uint64_t kUartInterruptEnable = 1;
constexpr std::uint64_t kUartFifoControl = 2;  // IIR on read
constexpr std::uint64_t kUartLineControl = 3;
constexpr std::uint64_t kUartModemControl = 4;
constexpr std::uint64_t kUartLineStatus = 5;
constexpr std::uint64_t kUartModemStatus = 6;

// IER bits 7-4 and MCR bits 7-5 are always 0 (PC16550D, register
// descriptions), whatever the guest writes. LCR, MCR and IER reads have no
// side effects, so checking does not disturb the fuzzing.
::testing::AssertionResult uart_reserved_bits_read_zero(Uart16550& uart) {
  const std::uint8_t line_control = in(uart, kUartLineControl);
  const std::uint8_t modem_control = in(uart, kUartModemControl);
  if ((modem_control & 0xe0) != 0) {
    return ::testing::AssertionFailure() << "MCR reads " << int{modem_control};
  }
  if ((line_control & 0x80) == 0) {
    const std::uint8_t interrupt_enable = in(uart, kUartInterruptEnable);
    if ((interrupt_enable & 0xf0) != 0) {
      return ::testing::AssertionFailure() << "IER reads " << int{interrupt_enable};
    }
  }
  return ::testing::AssertionSuccess();
}

// Whatever state the fuzzing left, a driver's initialization brings the UART
// to a known state in which a byte goes out and one comes in.
void expect_uart_answers_a_driver(Uart16550& uart) {
  out(uart, kUartLineControl, 0x80);  // DLAB
  out(uart, kUartData, 0x01);         // divisor 1: 115200 baud
  out(uart, kUartInterruptEnable, 0x00);
  EXPECT_EQ(in(uart, kUartData), 0x01);
  EXPECT_EQ(in(uart, kUartInterruptEnable), 0x00);
  out(uart, kUartLineControl, 0x03);      // 8N1, DLAB off
  out(uart, kUartModemControl, 0x08);     // OUT2 (the PC's IRQ enable), no loopback
  out(uart, kUartFifoControl, 0x01);      // FIFOs on
  uart.receive(0x55);                     // a byte the driver does not want
  out(uart, kUartFifoControl, 0x07);      // clear both FIFOs, trigger level 1
  out(uart, kUartInterruptEnable, 0x01);  // received data only
  (void)in(uart, kUartLineStatus);        // clears OE
  (void)in(uart, kUartModemStatus);       // clears the delta bits
  EXPECT_EQ(in(uart, kUartFifoControl), 0xc1) << "FIFOs on, no interrupt pending";
  EXPECT_FALSE(uart.irq_level());

  const std::uint64_t transmitted = uart.bytes_transmitted();
  out(uart, kUartData, 0x41);
  EXPECT_EQ(uart.bytes_transmitted(), transmitted + 1);
  uart.receive(0x7a);
  EXPECT_TRUE(uart.irq_level());
  EXPECT_EQ(in(uart, kUartFifoControl), 0xc4) << "received data available";
  EXPECT_EQ(in(uart, kUartLineStatus), 0x61) << "data ready, THR and transmitter empty";
  EXPECT_EQ(in(uart, kUartData), 0x7a);
  EXPECT_EQ(in(uart, kUartLineStatus), 0x60);
  EXPECT_FALSE(uart.irq_level());
}

TEST(DeviceFuzzTest, UartSurvivesRandomAccesses) {
  RandomAccesses random(1);
  std::vector<std::uint8_t> transmitted;
  std::uint64_t irq_calls = 0;
  std::uint64_t repeated_levels = 0;
  bool level = false;
  Uart16550 uart(
      [&](bool new_level) {
        // The UART reports changes of its IRQ output, so levels alternate.
        ++irq_calls;
        if (new_level == level) ++repeated_levels;
        level = new_level;
      },
      [&transmitted](std::uint8_t byte) { transmitted.push_back(byte); });
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    const std::size_t transmitted_before = transmitted.size();
    const Access access = random.access(uart, Uart16550::kRegisterCount);
    // A byte leaves only when the guest writes THR (offset 0), and it is the
    // byte written.
    if (transmitted.size() != transmitted_before) {
      ASSERT_EQ(transmitted.size(), transmitted_before + 1) << "iteration " << iteration;
      ASSERT_TRUE(!access.is_read && access.offset == kUartData) << "iteration " << iteration;
      ASSERT_EQ(transmitted.back(), access.data[0]) << "iteration " << iteration;
    }
    if (random.next() % 8 == 0) uart.receive(static_cast<std::uint8_t>(random.next()));
    ASSERT_TRUE(uart_reserved_bits_read_zero(uart)) << "iteration " << iteration;
  }
  EXPECT_EQ(transmitted.size(), uart.bytes_transmitted());
  EXPECT_GT(irq_calls, 0u);
  EXPECT_EQ(repeated_levels, 0u) << "the IRQ callback reported a level that did not change";
  EXPECT_EQ(level, uart.irq_level());
  // THR is always empty again at once, whatever state the guest left.
  EXPECT_EQ(in(uart, kUartLineStatus) & 0x60, 0x60);
  expect_accesses_stayed_in_bounds(random);
  expect_uart_answers_a_driver(uart);
  EXPECT_EQ(transmitted.back(), 0x41);
  EXPECT_EQ(level, uart.irq_level());
}

TEST(DeviceFuzzTest, UartWithoutCallbacksSurvivesRandomAccesses) {
  RandomAccesses random(2);
  Uart16550 uart({}, {});
  std::uint64_t transmitted = 0;
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    const std::uint64_t before = uart.bytes_transmitted();
    const Access access = random.access(uart, Uart16550::kRegisterCount);
    if (random.next() % 8 == 0) uart.receive(static_cast<std::uint8_t>(random.next()));
    ASSERT_TRUE(uart_reserved_bits_read_zero(uart)) << "iteration " << iteration;
    // Only a write to THR (offset 0) transmits, one byte.
    const std::uint64_t sent = uart.bytes_transmitted() - before;
    const bool writes_transmitter = !access.is_read && access.offset == kUartData;
    ASSERT_LE(sent, writes_transmitter ? 1u : 0u) << "iteration " << iteration;
    transmitted += sent;
  }
  EXPECT_GT(transmitted, 0u);
  expect_accesses_stayed_in_bounds(random);
  // With no one listening, the model still keeps its state and answers.
  expect_uart_answers_a_driver(uart);
}

// Lowers every input, programs both chips as a PC BIOS does (vector bases
// 0x20 and 0x28) and checks one request through each.
void expect_pic_answers_a_driver(Pic8259Pair& pic) {
  for (unsigned line = 0; line < 16; ++line)
    pic.set_irq(line, false);
  IoDevice& master = pic.master_ports();
  IoDevice& slave = pic.slave_ports();
  struct Setup {
    IoDevice* ports;
    std::uint8_t vector_base;  // ICW2
    std::uint8_t cascade;      // ICW3: the master's slave on IR2, the slave's ID 2
  };
  for (const Setup& chip : {Setup{&master, 0x20, 0x04}, Setup{&slave, 0x28, 0x02}}) {
    out(*chip.ports, 0, 0x11);  // ICW1: edge triggered, cascade, ICW4 follows
    out(*chip.ports, 1, chip.vector_base);
    out(*chip.ports, 1, chip.cascade);
    out(*chip.ports, 1, 0x01);  // ICW4: 8086 mode, normal EOI
  }
  EXPECT_FALSE(pic.interrupt_pending());
  pic.set_irq(1, true);
  ASSERT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x21);
  EXPECT_EQ(pic.in_service_register(Pic8259Pair::Chip::Master), 0x02);
  out(master, 0, 0x20);  // non-specific EOI
  pic.set_irq(12, true);
  ASSERT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge(), 0x2c);
  EXPECT_EQ(pic.in_service_register(Pic8259Pair::Chip::Slave), 0x10);
  out(slave, 0, 0x20);
  out(master, 0, 0x20);
  EXPECT_EQ(pic.in_service_register(Pic8259Pair::Chip::Master), 0x00);
  EXPECT_EQ(pic.in_service_register(Pic8259Pair::Chip::Slave), 0x00);
  EXPECT_FALSE(pic.interrupt_pending());
}

TEST(DeviceFuzzTest, PicSurvivesRandomAccessesLinesAndAcknowledges) {
  RandomAccesses random(3);
  Pic8259Pair pic;
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    random.access(random.next() % 2 == 0 ? pic.master_ports() : pic.slave_ports(), 2);
    const std::uint64_t action = random.next() % 4;
    if (action == 0) pic.set_irq(static_cast<unsigned>(random.next() % 20), random.next() % 2 == 0);
    if (action == 1 && pic.interrupt_pending()) {
      const std::uint8_t vector = pic.acknowledge();
      // A vector always comes from one of the two chips' eight-entry blocks.
      const bool from_master = (vector & 0xf8) == pic.vector_base(Pic8259Pair::Chip::Master);
      const bool from_slave = (vector & 0xf8) == pic.vector_base(Pic8259Pair::Chip::Slave);
      ASSERT_TRUE(from_master || from_slave);
    }
    if (action == 2) pic.acknowledge();
  }
  expect_accesses_stayed_in_bounds(random);
  expect_pic_answers_a_driver(pic);
}

// Programs counter 0 as a driver's periodic tick (mode 2, count 1000: an
// edge every 838 us) and checks that the count reads back in range and the
// edge comes on time, whatever state the fuzzing left.
void expect_pit_ticks_on_time(Pit8254& pit, FakeClock& clock) {
  constexpr std::uint64_t kControl = 3;
  out(pit, kControl, 0x34);  // counter 0, LSB then MSB, mode 2, binary
  out(pit, 0, 0xe8);
  out(pit, 0, 0x03);
  const std::optional<std::uint64_t> next = pit.next_event_ns();
  ASSERT_TRUE(next.has_value());
  ASSERT_GT(*next, clock.now_ns());
  // 1000 input clocks are 838095.3 ns, less up to one clock already begun.
  EXPECT_GE(*next - clock.now_ns(), 837'000u);
  EXPECT_LE(*next - clock.now_ns(), 838'096u);
  out(pit, kControl, 0x00);  // latch counter 0
  const unsigned low = in(pit, 0);
  const unsigned count = low | (unsigned{in(pit, 0)} << 8);
  EXPECT_GE(count, 1u);
  EXPECT_LE(count, 1000u);
  clock.set_ns(*next);
  const std::uint64_t ticks = pit.ticks();
  pit.update(*next);
  EXPECT_EQ(pit.ticks(), ticks + 1) << "the edge is delivered when it falls due";
}

TEST(DeviceFuzzTest, PitSurvivesRandomAccessesAndTime) {
  RandomAccesses random(4);
  FakeClock clock;
  std::uint64_t edges = 0;
  Pit8254 pit(clock, [&edges](bool level) { edges += level ? 1 : 0; });
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    random.access(pit, Pit8254::kRegisterCount);
    const std::uint64_t action = random.next() % 8;
    if (action == 0) clock.advance_ns(random.next() % 1'000'000);
    if (action == 1) clock.advance_ns(random.next() % 100'000'000'000);
    if (action == 2) pit.update(clock.now_ns());
    if (action == 3) {
      const std::optional<std::uint64_t> next = pit.next_event_ns();
      if (next && *next > clock.now_ns() && *next - clock.now_ns() < 1'000'000'000'000) {
        clock.set_ns(*next);
        const std::uint64_t before = pit.ticks();
        pit.update(*next);
        // An edge scheduled for now is delivered now.
        ASSERT_EQ(pit.ticks(), before + 1);
      }
    }
  }
  EXPECT_EQ(edges, pit.ticks());
  expect_accesses_stayed_in_bounds(random);
  expect_pit_ticks_on_time(pit, clock);
  EXPECT_EQ(edges, pit.ticks());
}

TEST(DeviceFuzzTest, PitSurvivesAClockNearItsLimit) {
  RandomAccesses random(5);
  FakeClock clock;
  clock.set_ns(std::numeric_limits<std::uint64_t>::max() - 1'000'000'000);
  std::uint64_t rising = 0;
  std::uint64_t falling = 0;
  Pit8254 pit(clock, [&](bool level) { ++(level ? rising : falling); });
  for (int iteration = 0; iteration < kIterations / 10; ++iteration) {
    random.access(pit, Pit8254::kRegisterCount);
    clock.advance_ns(random.next() % 1000);
    const std::uint64_t ticks = pit.ticks();
    pit.update(clock.now_ns());
    ASSERT_LE(pit.ticks(), ticks + 1) << "update() delivers at most one edge";
    // Once updated to now, the next edge lies ahead (or at the clock's limit,
    // where the model clamps a time it cannot represent), never behind.
    const std::optional<std::uint64_t> next = pit.next_event_ns();
    if (next) {
      ASSERT_GT(*next, clock.now_ns()) << "iteration " << iteration;
    }
  }
  EXPECT_EQ(rising, pit.ticks());
  EXPECT_EQ(falling, pit.ticks()) << "every edge is a pulse: raised, then lowered";
  expect_accesses_stayed_in_bounds(random);
  expect_pit_ticks_on_time(pit, clock);
}

TEST(DeviceFuzzTest, DebugPortsSurviveRandomAccesses) {
  RandomAccesses random(6);
  std::vector<std::uint8_t> console_output;
  std::vector<std::uint32_t> exit_values;
  DebugConsole console([&console_output](std::uint8_t byte) { console_output.push_back(byte); });
  ExitPort exit_port([&exit_values](std::uint32_t value) { exit_values.push_back(value); });
  DebugConsole silent_console({});
  ExitPort silent_exit_port({});
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    const std::size_t output_before = console_output.size();
    const Access to_console = random.access(console, 1);
    const bool console_hit = to_console.offset == 0;
    if (to_console.is_read) {
      // The readback value QEMU guests probe for, then the bus's zero fill.
      ASSERT_EQ(to_console.data[0], console_hit ? DebugConsole::kReadbackValue : 0);
      ASSERT_EQ(console_output.size(), output_before) << "a read printed something";
    } else if (console_hit) {
      ASSERT_EQ(console_output.size(), output_before + 1) << "one byte per write";
      ASSERT_EQ(console_output.back(), to_console.data[0]) << "the write's low byte";
    } else {
      ASSERT_EQ(console_output.size(), output_before) << "a write past the port printed";
    }

    const std::size_t exits_before = exit_values.size();
    const Access to_exit = random.access(exit_port, ExitPort::kPortCount);
    if (to_exit.is_read) {
      for (std::size_t index = 0; index < to_exit.width; ++index)
        ASSERT_EQ(to_exit.data[index], 0) << "the exit port reads as 0";
      ASSERT_EQ(exit_values.size(), exits_before) << "a read requested an exit";
    } else if (to_exit.offset < ExitPort::kPortCount) {
      // The value is the write's first (at most four) bytes, little endian:
      // a one-byte write can never pass more than 0xff, and so on.
      std::uint32_t expected = 0;
      for (std::size_t index = 0; index < std::min<std::size_t>(to_exit.width, 4); ++index)
        expected |= std::uint32_t{to_exit.data[index]} << (8 * index);
      ASSERT_EQ(exit_values.size(), exits_before + 1);
      ASSERT_EQ(exit_values.back(), expected);
      ASSERT_EQ(exit_port.last_value(), expected);
    } else {
      ASSERT_EQ(exit_values.size(), exits_before) << "a write past the ports requested an exit";
    }

    random.access(silent_console, 1);
    random.access(silent_exit_port, ExitPort::kPortCount);
  }
  EXPECT_EQ(console_output.size(), console.bytes_written());
  EXPECT_GT(exit_values.size(), 0u);
  EXPECT_TRUE(exit_port.exit_requested());
  EXPECT_GT(silent_console.bytes_written(), 0u) << "counted even with no one listening";
  EXPECT_TRUE(silent_exit_port.exit_requested());
  expect_accesses_stayed_in_bounds(random);
}

// What the time registers of an updating clock must hold whatever the guest
// wrote before: a valid date and time in the format status B selects.
void expect_valid_time_registers(Mc146818Rtc& rtc) {
  const auto read = [&rtc](std::uint8_t index) {
    const std::uint8_t select = index;
    rtc.write(0, std::span(&select, 1));
    std::uint8_t value = 0;
    rtc.read(1, std::span(&value, 1));
    return value;
  };
  const std::uint8_t status_b = read(mc146818::kStatusB);
  const bool binary = (status_b & mc146818::kStatusBBinary) != 0;
  const auto value = [&](std::uint8_t byte) -> int {
    if (binary) return byte;
    EXPECT_LE(byte & 0x0f, 9) << "a BCD digit above 9";
    EXPECT_LE(byte >> 4, 9) << "a BCD digit above 9";
    return (byte >> 4) * 10 + (byte & 0x0f);
  };
  EXPECT_LT(value(read(mc146818::kSeconds)), 60);
  EXPECT_LT(value(read(mc146818::kMinutes)), 60);
  const std::uint8_t hours = read(mc146818::kHours);
  if ((status_b & mc146818::kStatusB24Hour) != 0) {
    EXPECT_LT(value(hours), 24);
  } else {
    EXPECT_GE(value(hours & 0x7f), 1);
    EXPECT_LE(value(hours & 0x7f), 12);
  }
  const int weekday = value(read(mc146818::kDayOfWeek));
  EXPECT_GE(weekday, 1);
  EXPECT_LE(weekday, 7);
  const int day = value(read(mc146818::kDayOfMonth));
  EXPECT_GE(day, 1);
  EXPECT_LE(day, 31);
  const int month = value(read(mc146818::kMonth));
  EXPECT_GE(month, 1);
  EXPECT_LE(month, 12);
  EXPECT_LT(value(read(mc146818::kYear)), 100);
  EXPECT_LT(value(read(mc146818::kCentury)), 100);
}

TEST(DeviceFuzzTest, RtcSurvivesRandomAccessesAndTime) {
  RandomAccesses random(9);
  FakeClock clock;
  clock.set_ns(1'000'000'000'000);
  Mc146818Rtc rtc(clock, std::int64_t{1'796'166'062} * 1'000'000'000);
  // The CMOS RAM bytes the guest wrote, to be read back unchanged; the
  // century (0x32 and its alias 0x37) is a time register.
  std::array<std::optional<std::uint8_t>, Mc146818Rtc::kRegisterCount> ram{};
  const auto is_ram = [](std::uint8_t index) {
    return index >= 0x0e && index != mc146818::kCentury && index != mc146818::kPs2Century;
  };
  for (int iteration = 0; iteration < kIterations; ++iteration) {
    std::uint8_t index = rtc.index();
    bool nmi_disabled = rtc.nmi_disabled();
    const Access access = random.access(rtc, Mc146818Rtc::kPortCount);
    // The bytes of the access reach the index port, then the data port.
    for (std::size_t byte = 0; byte < access.width; ++byte) {
      if (access.offset >= Mc146818Rtc::kPortCount ||
          byte >= Mc146818Rtc::kPortCount - access.offset) {
        break;
      }
      const std::uint8_t data = access.data[byte];
      if (access.offset + byte == 0) {
        if (access.is_read) {
          ASSERT_EQ(data, 0xff) << "the index port reads as QEMU's";
        } else {
          index = data & 0x7f;
          nmi_disabled = (data & 0x80) != 0;
        }
      } else if (access.is_read) {
        if (index == mc146818::kStatusD) {
          ASSERT_EQ(data, mc146818::kStatusDValidRamAndTime);
        }
        if (index == mc146818::kStatusC) {
          ASSERT_EQ(data & 0x0f, 0) << "C's low bits read 0";
        }
        if (is_ram(index) && ram[index]) {
          ASSERT_EQ(data, *ram[index]) << "RAM byte " << +index;
        }
      } else if (is_ram(index)) {
        ram[index] = data;
      }
    }
    ASSERT_EQ(rtc.index(), index);
    ASSERT_EQ(rtc.nmi_disabled(), nmi_disabled);
    const std::uint64_t action = random.next() % 16;
    if (action == 0) clock.advance_ns(random.next() % 2'000'000'000);
    if (action == 1) clock.advance_ns(random.next() % 100'000);
    if (action == 2 && rtc.updating()) {
      expect_valid_time_registers(rtc);
      if (::testing::Test::HasFailure()) return;
    }
  }
  for (unsigned index = 0; index < Mc146818Rtc::kRegisterCount; ++index) {
    if (!ram[index]) continue;
    const auto select = static_cast<std::uint8_t>(index);
    rtc.write(0, std::span(&select, 1));
    std::uint8_t value = 0;
    rtc.read(1, std::span(&value, 1));
    EXPECT_EQ(value, *ram[index]) << "RAM byte " << index;
  }
  expect_accesses_stayed_in_bounds(random);
  EXPECT_GT(rtc.register_accesses(), 0u);
}

// The disk under the ATA model, checking that every request it makes is one
// whole sector inside the image.
class CheckedBackend final : public BlockBackend {
 public:
  CheckedBackend(std::uint64_t sectors, DiskAccess access) : m_disk(sectors, access) {}
  std::uint64_t size_bytes() const override { return m_disk.size_bytes(); }
  bool read_only() const override { return m_disk.read_only(); }
  std::string serial() const override { return m_disk.serial(); }
  Status read(std::uint64_t offset, std::span<std::uint8_t> out) override {
    check(offset, out.size());
    return m_disk.read(offset, out);
  }
  Status write(std::uint64_t offset, std::span<const std::uint8_t> in) override {
    check(offset, in.size());
    return m_disk.write(offset, in);
  }
  Status flush() override { return m_disk.flush(); }

  std::uint64_t bad_requests() const { return m_bad_requests; }
  const MemoryBlockBackend& disk() const { return m_disk; }

 private:
  void check(std::uint64_t offset, std::size_t length) {
    if (offset % kSectorSize != 0 || length != kSectorSize || offset >= size_bytes() ||
        length > size_bytes() - offset) {
      ++m_bad_requests;
    }
  }

  MemoryBlockBackend m_disk;
  std::uint64_t m_bad_requests = 0;
};

TEST(DeviceFuzzTest, AtaDiskSurvivesRandomAccessesAndStaysInsideTheImage) {
  // Opcodes a driver uses, so that random programming starts real transfers.
  constexpr std::array<std::uint8_t, 10> kOpcodes{0x20, 0x24, 0x30, 0x34, 0xe7,
                                                  0xea, 0xec, 0xef, 0x00, 0xc8};
  constexpr std::uint8_t kValidStatusBits = 0x80 | 0x40 | 0x20 | 0x08 | 0x01;
  for (const DiskAccess access : {DiskAccess::ReadWrite, DiskAccess::ReadOnly}) {
    RandomAccesses random(access == DiskAccess::ReadWrite ? 7 : 8);
    CheckedBackend backend(64, access);
    std::uint64_t edges = 0;
    bool level = false;
    AtaDisk disk(backend, [&edges, &level](bool new_level) {
      if (new_level && !level) ++edges;
      level = new_level;
    });
    auto out = [&disk](std::uint64_t port, std::uint64_t value) {
      const auto byte = static_cast<std::uint8_t>(value);
      disk.command_block().write(port, std::span(&byte, 1));
    };
    for (int iteration = 0; iteration < kIterations; ++iteration) {
      const std::uint64_t action = random.next() % 16;
      if (action == 0) {
        // A plausible request near the end of the 64-sector image.
        const auto control = static_cast<std::uint8_t>(random.next() & 0x02);
        disk.control_block().write(0, std::span(&control, 1));
        out(2, random.next() % 4);
        out(3, random.next() % 72);
        out(4, random.next() % 8 == 0 ? random.next() : 0);
        out(5, 0);
        out(6, 0xe0 | (random.next() % 8 == 0 ? 0x10 : 0));
        out(7, kOpcodes[random.next() % kOpcodes.size()]);
      } else if (action == 1) {
        const std::uint64_t words = random.next() % 300;
        const bool reading = random.next() % 2 == 0;
        for (std::uint64_t word = 0; word < words; ++word) {
          std::array<std::uint8_t, 2> data{static_cast<std::uint8_t>(random.next()), 0};
          if (reading) {
            disk.command_block().read(0, data);
          } else {
            disk.command_block().write(0, data);
          }
        }
      } else if (action == 2) {
        random.access(disk.control_block(), AtaDisk::kControlBlockPortCount);
      } else {
        random.access(disk.command_block(), AtaDisk::kCommandBlockPortCount);
      }
      std::uint8_t status = 0;
      disk.control_block().read(0, std::span(&status, 1));
      ASSERT_EQ(status & ~kValidStatusBits, 0) << "iteration " << iteration;
    }
    EXPECT_EQ(backend.bad_requests(), 0u);
    expect_accesses_stayed_in_bounds(random);
    EXPECT_EQ(edges, disk.interrupts_raised());
    EXPECT_GT(disk.sectors_read(), 0u);
    if (access == DiskAccess::ReadOnly) {
      EXPECT_EQ(backend.disk().writes(), 0u);
    } else {
      EXPECT_GT(disk.sectors_written(), 0u);
    }
  }
}

}  // namespace
}  // namespace vmlab::devices
