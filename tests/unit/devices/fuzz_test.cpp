// Whatever a guest writes, a device model must neither crash nor throw, and
// must keep the invariants its register interface promises.
#include <vmlab/devices/ata.hpp>
#include <vmlab/devices/debug_console.hpp>
#include <vmlab/devices/exit_port.hpp>
#include <vmlab/devices/memory_block_backend.hpp>
#include <vmlab/devices/pic8259.hpp>
#include <vmlab/devices/pit8254.hpp>
#include <vmlab/devices/uart16550.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <vmlab/clock.hpp>

namespace vmlab::devices {
namespace {

constexpr int iterations = 200'000;

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
    static constexpr std::array<std::size_t, 7> widths{1, 1, 1, 2, 4, 8, 3};
    return widths[m_random() % widths.size()];
  }
  std::uint64_t next() { return m_random(); }

  void access(IoDevice& device, std::uint64_t range) {
    std::array<std::uint8_t, 8> buffer{};
    const std::span<std::uint8_t> data(buffer.data(), width());
    const std::uint64_t where = offset(range);
    if (m_random() % 2 == 0) {
      device.read(where, data);
    } else {
      for (std::uint8_t& byte : data)
        byte = static_cast<std::uint8_t>(m_random());
      device.write(where, data);
    }
  }

 private:
  std::mt19937_64 m_random;
};

TEST(DeviceFuzzTest, UartSurvivesRandomAccesses) {
  RandomAccesses random(1);
  Uart16550 uart([](bool) {}, [](std::uint8_t) {});
  for (int iteration = 0; iteration < iterations; ++iteration) {
    random.access(uart, Uart16550::register_count);
    if (random.next() % 8 == 0) uart.receive(static_cast<std::uint8_t>(random.next()));
  }
  // THR is always empty again at once, whatever state the guest left.
  std::uint8_t status = 0;
  uart.read(5, std::span<std::uint8_t>(&status, 1));
  EXPECT_EQ(status & 0x60, 0x60);
}

TEST(DeviceFuzzTest, UartWithoutCallbacksSurvivesRandomAccesses) {
  RandomAccesses random(2);
  Uart16550 uart({}, {});
  for (int iteration = 0; iteration < iterations; ++iteration) {
    random.access(uart, Uart16550::register_count);
    if (random.next() % 8 == 0) uart.receive(static_cast<std::uint8_t>(random.next()));
  }
  SUCCEED();
}

TEST(DeviceFuzzTest, PicSurvivesRandomAccessesLinesAndAcknowledges) {
  RandomAccesses random(3);
  Pic8259Pair pic;
  for (int iteration = 0; iteration < iterations; ++iteration) {
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
}

TEST(DeviceFuzzTest, PitSurvivesRandomAccessesAndTime) {
  RandomAccesses random(4);
  FakeClock clock;
  std::uint64_t edges = 0;
  Pit8254 pit(clock, [&edges](bool level) { edges += level ? 1 : 0; });
  for (int iteration = 0; iteration < iterations; ++iteration) {
    random.access(pit, Pit8254::register_count);
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
}

TEST(DeviceFuzzTest, PitSurvivesAClockNearItsLimit) {
  RandomAccesses random(5);
  FakeClock clock;
  clock.set_ns(std::numeric_limits<std::uint64_t>::max() - 1'000'000'000);
  Pit8254 pit(clock, {});
  for (int iteration = 0; iteration < iterations / 10; ++iteration) {
    random.access(pit, Pit8254::register_count);
    clock.advance_ns(random.next() % 1000);
    pit.update(clock.now_ns());
    (void)pit.next_event_ns();
  }
  SUCCEED();
}

TEST(DeviceFuzzTest, DebugPortsSurviveRandomAccesses) {
  RandomAccesses random(6);
  std::uint64_t bytes = 0;
  std::uint64_t exits = 0;
  DebugConsole console([&bytes](std::uint8_t) { ++bytes; });
  ExitPort exit_port([&exits](std::uint32_t) { ++exits; });
  DebugConsole silent_console({});
  ExitPort silent_exit_port({});
  for (int iteration = 0; iteration < iterations; ++iteration) {
    random.access(console, 1);
    random.access(exit_port, ExitPort::port_count);
    random.access(silent_console, 1);
    random.access(silent_exit_port, ExitPort::port_count);
  }
  EXPECT_EQ(bytes, console.bytes_written());
  EXPECT_GT(exits, 0u);
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
  constexpr std::array<std::uint8_t, 10> opcodes{0x20, 0x24, 0x30, 0x34, 0xe7,
                                                 0xea, 0xec, 0xef, 0x00, 0xc8};
  constexpr std::uint8_t valid_status_bits = 0x80 | 0x40 | 0x20 | 0x08 | 0x01;
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
    for (int iteration = 0; iteration < iterations; ++iteration) {
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
        out(7, opcodes[random.next() % opcodes.size()]);
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
        random.access(disk.control_block(), AtaDisk::control_block_port_count);
      } else {
        random.access(disk.command_block(), AtaDisk::command_block_port_count);
      }
      std::uint8_t status = 0;
      disk.control_block().read(0, std::span(&status, 1));
      ASSERT_EQ(status & ~valid_status_bits, 0) << "iteration " << iteration;
    }
    EXPECT_EQ(backend.bad_requests(), 0u);
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
