#include <vmlab/devices/pit8254.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include <vmlab/clock.hpp>

namespace vmlab::devices {
namespace {

constexpr std::uint64_t kControl = 3;

// The first nanosecond at which `tick` input clocks have elapsed since 0.
std::uint64_t ns_at_tick(std::uint64_t tick) {
  return (tick * 1'000'000'000 + Pit8254::kInputFrequencyHz - 1) / Pit8254::kInputFrequencyHz;
}

class PitTest : public ::testing::Test {
 protected:
  PitTest() : m_pit(m_clock, [this](bool level) { m_irq_levels.push_back(level); }) {}

  void out(std::uint64_t port, std::uint8_t value) {
    m_pit.write(port, std::span<const std::uint8_t>(&value, 1));
  }
  std::uint8_t in(std::uint64_t port) {
    std::uint8_t value = 0;
    m_pit.read(port, std::span<std::uint8_t>(&value, 1));
    return value;
  }
  void program(std::uint8_t control_word, std::uint16_t count, unsigned counter = 0) {
    out(kControl, control_word);
    out(counter, static_cast<std::uint8_t>(count & 0xff));
    out(counter, static_cast<std::uint8_t>(count >> 8));
  }
  // Counter latch command, then LSB and MSB.
  std::uint16_t latched_count(unsigned counter = 0) {
    out(kControl, static_cast<std::uint8_t>(counter << 6));
    const std::uint8_t low = in(counter);
    const std::uint8_t high = in(counter);
    return static_cast<std::uint16_t>(low | (high << 8));
  }
  void at_tick(std::uint64_t tick) { m_clock.set_ns(ns_at_tick(tick)); }

  FakeClock m_clock;
  std::vector<bool> m_irq_levels;
  Pit8254 m_pit;
};

TEST_F(PitTest, NothingIsScheduledBeforeCounterZeroIsProgrammed) {
  EXPECT_FALSE(m_pit.next_event_ns().has_value());
  m_clock.set_ns(1'000'000'000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 0u);
  EXPECT_TRUE(m_irq_levels.empty());
}

TEST_F(PitTest, RateGeneratorAt100HzTicksEveryTenMilliseconds) {
  program(0x34, 11932);  // counter 0, LSB then MSB, mode 2: Linux's PIT setup
  std::uint64_t previous = 0;
  for (std::uint64_t period = 1; period <= 100; ++period) {
    const std::optional<std::uint64_t> next = m_pit.next_event_ns();
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(*next, ns_at_tick(11932 * period));
    EXPECT_NEAR(static_cast<double>(*next - previous), 10'000'150.86, 1.0);  // 11932 / 1193182 s
    m_pit.update(*next - 1);                                                 // just before: nothing
    EXPECT_EQ(m_pit.ticks(), period - 1);
    m_clock.set_ns(*next);
    m_pit.update(*next);
    EXPECT_EQ(m_pit.ticks(), period);
    previous = *next;
  }
  EXPECT_EQ(m_pit.missed_ticks(), 0u);
  // Each tick is a pulse: raised, then lowered.
  ASSERT_EQ(m_irq_levels.size(), 200u);
  EXPECT_TRUE(m_irq_levels[0]);
  EXPECT_FALSE(m_irq_levels[1]);
}

TEST_F(PitTest, SquareWaveHasTheSamePeriodAndDecrementsByTwo) {
  program(0x36, 1000);  // mode 3
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(1000));
  at_tick(1);
  EXPECT_EQ(latched_count(), 998);
  at_tick(499);
  EXPECT_EQ(latched_count(), 2);
  out(kControl, 0xe2);            // read-back status of counter 0
  EXPECT_EQ(in(0) & 0x80, 0x80);  // OUT high in the first half
  at_tick(500);
  EXPECT_EQ(latched_count(), 1000);
  out(kControl, 0xe2);
  EXPECT_EQ(in(0) & 0x80, 0x00);  // and low in the second
  at_tick(1000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 1u);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(2000));
}

TEST_F(PitTest, CounterValueFollowsTheClock) {
  program(0x34, 1000);
  EXPECT_EQ(latched_count(), 1000);
  at_tick(100);
  EXPECT_EQ(latched_count(), 900);
  at_tick(999);
  EXPECT_EQ(latched_count(), 1);
  at_tick(1000);
  EXPECT_EQ(latched_count(), 1000);  // reloaded
  at_tick(1250);
  EXPECT_EQ(latched_count(), 750);
}

TEST_F(PitTest, LatchHoldsTheValueAndASecondLatchIsIgnored) {
  program(0x34, 1000);
  at_tick(100);
  out(kControl, 0x00);
  at_tick(200);
  out(kControl, 0x00);     // ignored: the first latch has not been read
  EXPECT_EQ(in(0), 0x84);  // 900 = 0x0384
  EXPECT_EQ(in(0), 0x03);
  EXPECT_EQ(latched_count(), 800);
}

TEST_F(PitTest, UnlatchedReadsAlternateLowAndHighBytes) {
  program(0x34, 0x1234);
  EXPECT_EQ(in(0), 0x34);
  EXPECT_EQ(in(0), 0x12);
  EXPECT_EQ(in(0), 0x34);
}

TEST_F(PitTest, ReadBackReturnsStatusThenCount) {
  out(kControl, 0x34);
  out(kControl, 0xc2);     // read-back count and status of counter 0
  EXPECT_EQ(in(0), 0xf4);  // OUT high, NULL COUNT, LSB/MSB, mode 2, binary
  program(0x34, 1000);
  at_tick(100);
  out(kControl, 0xc2);
  EXPECT_EQ(in(0), 0xb4);  // count loaded: NULL COUNT clear
  EXPECT_EQ(in(0), 0x84);
  EXPECT_EQ(in(0), 0x03);
}

TEST_F(PitTest, ReadBackCanSelectSeveralCounters) {
  program(0x34, 1000, 0);
  program(0xb6, 500, 2);  // counter 2, mode 3
  at_tick(10);
  out(kControl, 0xca);  // count and status of counters 0 and 2
  EXPECT_EQ(in(0), 0xb4);
  EXPECT_EQ(in(2), 0xb6);
  const std::uint8_t low0 = in(0);
  const std::uint8_t high0 = in(0);
  EXPECT_EQ(low0 | (high0 << 8), 990);
  const std::uint8_t low2 = in(2);
  const std::uint8_t high2 = in(2);
  EXPECT_EQ(low2 | (high2 << 8), 480);
}

TEST_F(PitTest, ModeZeroInterruptsOnceAtTerminalCount) {
  out(kControl, 0x30);
  out(kControl, 0xe2);
  EXPECT_EQ(in(0), 0x70);  // OUT low after the mode set, NULL COUNT
  program(0x30, 1000);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(1000));
  at_tick(999);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 0u);
  out(kControl, 0xe2);
  EXPECT_EQ(in(0), 0x30);
  at_tick(1000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 1u);
  out(kControl, 0xe2);
  EXPECT_EQ(in(0), 0xb0);  // OUT high and stays high
  EXPECT_FALSE(m_pit.next_event_ns().has_value());
  at_tick(1001);
  EXPECT_EQ(latched_count(), 0xffff);  // the counter wraps and keeps going
  at_tick(100'000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 1u);
}

TEST_F(PitTest, ModeZeroRewriteRestartsTheOneShot) {
  program(0x30, 1000);
  at_tick(500);
  out(0, 0xd0);  // first byte: counting stops
  at_tick(800);
  out(0, 0x07);  // 2000 from now
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(2800));
  at_tick(1000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 0u);
}

TEST_F(PitTest, LateUpdateCoalescesMissedTicks) {
  program(0x34, 11932);
  m_clock.set_ns(55'000'000);  // five periods have passed
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 1u);
  EXPECT_EQ(m_pit.missed_ticks(), 4u);
  EXPECT_EQ(m_irq_levels.size(), 2u);  // one pulse
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(std::uint64_t{11932} * 6));
  m_pit.update(m_clock.now_ns());  // nothing new
  EXPECT_EQ(m_pit.ticks(), 1u);
}

TEST_F(PitTest, CountZeroMeans65536) {
  program(0x34, 0);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(65536));
  EXPECT_NEAR(static_cast<double>(*m_pit.next_event_ns()), 54'925'401.15,
              1.0);  // 65536 / 1193182 s
  at_tick(1);
  EXPECT_EQ(latched_count(), 65535);
}

TEST_F(PitTest, NewCountInRateGeneratorWaitsForTheEndOfThePeriod) {
  program(0x34, 1000);
  at_tick(500);
  out(0, 0xd0);
  out(0, 0x07);  // 2000
  out(kControl, 0xe2);
  EXPECT_EQ(in(0) & 0x40, 0x40);  // NULL COUNT until the reload
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(1000));
  EXPECT_EQ(latched_count(), 500);
  at_tick(1000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 1u);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(3000));
  at_tick(1500);
  EXPECT_EQ(latched_count(), 1500);
  out(kControl, 0xe2);
  EXPECT_EQ(in(0) & 0x40, 0x00);
}

TEST_F(PitTest, LateUpdateAcrossAReloadCountsBothPeriods) {
  program(0x34, 1000);
  at_tick(500);
  out(0, 0xd0);
  out(0, 0x07);  // 2000 from tick 1000: edges at 1000, 3000, 5000
  at_tick(5500);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 1u);
  EXPECT_EQ(m_pit.missed_ticks(), 2u);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(7000));
}

TEST_F(PitTest, ControlWordStopsCounterZero) {
  program(0x34, 1000);
  out(kControl, 0x34);
  EXPECT_FALSE(m_pit.next_event_ns().has_value());
}

TEST_F(PitTest, ReprogrammingDeliversAnEdgeThatWasAlreadyDue) {
  program(0x34, 1000);
  at_tick(1200);  // the edge at 1000 is due but update() has not run
  program(0x34, 5000);
  EXPECT_EQ(m_pit.ticks(), 1u);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(6200));
}

TEST_F(PitTest, BcdCounting) {
  program(0x35, 0x1000);  // mode 2, BCD 1000
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(1000));
  at_tick(100);
  EXPECT_EQ(latched_count(), 0x0900);
  out(kControl, 0xe2);
  EXPECT_EQ(in(0), 0xb5);
}

TEST_F(PitTest, SingleByteAccessModes) {
  out(kControl, 0x10);  // LSB only, mode 0
  out(0, 100);
  at_tick(10);
  EXPECT_EQ(in(0), 90);
  EXPECT_EQ(in(0), 90);  // no byte pointer to flip
  out(kControl, 0x20);   // MSB only, mode 0
  out(0, 0x02);          // 512
  EXPECT_EQ(in(0), 0x02);
  EXPECT_EQ(m_pit.next_event_ns(), ns_at_tick(10 + 512));
}

TEST_F(PitTest, OtherCountersDoNotDriveIrq0) {
  program(0x74, 100, 1);  // counter 1, mode 2
  program(0xb6, 100, 2);  // counter 2, mode 3
  EXPECT_FALSE(m_pit.next_event_ns().has_value());
  at_tick(1000);
  m_pit.update(m_clock.now_ns());
  EXPECT_EQ(m_pit.ticks(), 0u);
  EXPECT_EQ(latched_count(1), 100);
  EXPECT_EQ(latched_count(2), 100);
}

TEST_F(PitTest, ControlPortReadsZero) {
  program(0x34, 1000);
  EXPECT_EQ(in(kControl), 0x00);
}

TEST_F(PitTest, GateTriggeredModesNeverStart) {
  program(0x32, 1000);  // mode 1 waits for a GATE edge that never comes
  EXPECT_FALSE(m_pit.next_event_ns().has_value());
  out(kControl, 0xe2);
  EXPECT_EQ(in(0), 0xf2);  // OUT high, NULL COUNT
}

}  // namespace
}  // namespace vmlab::devices
