// An 8254 programmable interval timer (Intel 8254 datasheet, order no.
// 231164), as wired on a PC: a 1.193182 MHz input clock on all three
// counters, counter 0's OUT on IRQ0.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <vmlab/clock.hpp>
#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// Registered on a 4-port range (0x40-0x43 on a PC): offsets 0-2 are the
// counters, 3 the control word register.
//
// Counting is not simulated clock by clock: a counter remembers the input
// clock tick at which its count was loaded and computes its value and OUT
// from the Clock when asked. Input clock ticks are counted from the Clock's
// origin, so every counter sees the same tick boundaries.
//
// Modelled: modes 0-5 (mode 6 and 7 alias 2 and 3), binary and BCD counting,
// LSB / MSB / LSB-then-MSB access, the counter latch command, the read-back
// command (status and count), count 0 meaning 65536 (10000 in BCD), and a
// count written while a mode 2 or 3 counter runs taking effect at the end of
// the current period. Simplifications: a count is loaded the moment it is
// written rather than on the next clock pulse (an offset of at most 838 ns);
// in mode 3 a new count waits for the end of the period, not of the current
// half period; all GATE inputs are high. On a PC counters 0 and 1 have GATE
// tied high, but counter 2's GATE is bit 0 of port 0x61 (with the speaker
// output on bit 5); port 0x61 is out of scope, so counter 2 always runs and
// modes 1 and 5, which wait for a rising GATE edge, never start.
//
// Interrupts: every rising edge of counter 0's OUT is delivered as
// irq0(true) then irq0(false), a pulse the edge-triggered 8259A latches. The
// board arms a host timer for next_event_ns() and calls update() when it
// fires. When the host was late and several edges fell due, update()
// delivers one and counts the others in missed_ticks(), as KVM's in-kernel
// PIT coalesces by default.
class Pit8254 final : public IoDevice {
 public:
  static constexpr std::uint64_t kInputFrequencyHz = 1'193'182;
  static constexpr std::uint64_t kRegisterCount = 4;

  Pit8254(const Clock& clock, IrqLine irq0);

  std::string_view name() const override { return "pit8254"; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // When counter 0 next raises an edge on IRQ0, in the Clock's nanoseconds;
  // nullopt when none is scheduled. The time may already have passed if
  // update() has not been called since.
  std::optional<std::uint64_t> next_event_ns() const;
  // Delivers the IRQ0 edge due up to `now_ns` (from the same Clock), at most
  // one per call. Port writes that reprogram counter 0 also deliver an edge
  // that was due before they change the schedule.
  void update(std::uint64_t now_ns);

  std::uint64_t ticks() const { return m_ticks; }                // edges delivered
  std::uint64_t missed_ticks() const { return m_missed_ticks; }  // edges coalesced

 private:
  // Counter modes, control word bits 3-1.
  enum class Mode : std::uint8_t {
    InterruptOnTerminalCount,
    HardwareRetriggerableOneShot,
    RateGenerator,
    SquareWave,
    SoftwareTriggeredStrobe,
    HardwareTriggeredStrobe,
  };
  // Control word bits 5-4, as the read-back status reports them too (00 is
  // the counter latch command, not a mode).
  enum class Access : std::uint8_t { LowByte = 1, HighByte = 2, LowThenHigh = 3 };

  // A count loaded into the counting element at an input clock tick.
  struct Segment {
    std::uint64_t start_tick = 0;
    std::uint32_t count = 0;  // 1..65536 (binary) or 1..10000 (BCD), in input clocks
  };

  struct Counter {
    Mode mode = Mode::InterruptOnTerminalCount;
    std::uint8_t mode_bits = 0;  // as programmed, for the read-back status
    Access access = Access::LowThenHigh;
    bool bcd = false;

    std::uint8_t count_low_byte = 0;  // first half of an LSB-then-MSB count
    bool write_high_next = false;
    bool read_high_next = false;

    bool counting = false;
    Segment segment;
    std::optional<Segment> next_segment;  // modes 2 and 3: reload at a period's end
    std::uint32_t stopped_value = 0;      // the counting element while not counting

    bool count_latched = false;
    std::uint16_t latched_count = 0;
    bool latched_high_next = false;
    bool status_latched = false;
    std::uint8_t latched_status = 0;
  };

  std::uint8_t read_counter(Counter& counter);
  void write_counter(unsigned index, std::uint8_t value);
  void write_control(std::uint8_t value);
  void load_count(Counter& counter, std::uint16_t raw_count, std::uint64_t tick);
  void latch_count(Counter& counter, std::uint64_t tick);
  void stop_counting(Counter& counter, std::uint64_t tick);

  std::uint64_t current_tick() const;
  std::uint32_t counting_element(const Counter& counter, std::uint64_t tick) const;
  std::uint16_t readable_value(const Counter& counter, std::uint64_t tick) const;
  bool output(const Counter& counter, std::uint64_t tick) const;
  bool null_count(const Counter& counter, std::uint64_t tick) const;
  std::uint8_t status(const Counter& counter, std::uint64_t tick) const;

  std::uint64_t edges_between(const Counter& counter, std::uint64_t after_tick,
                              std::uint64_t through_tick) const;
  std::optional<std::uint64_t> next_edge_after(const Counter& counter, std::uint64_t tick) const;
  // Modes 0 and 4: the tick at which OUT rises, once.
  static std::uint64_t one_shot_edge(const Counter& counter);
  // Accounts counter 0's edges up to `tick` and delivers one if any fell due.
  void account_edges(std::uint64_t tick);
  static void settle(Counter& counter, std::uint64_t tick);

  const Clock& m_clock;
  IrqLine m_irq0;
  std::array<Counter, 3> m_counters{};
  std::uint64_t m_accounted_tick = 0;  // counter 0's edges are delivered through here
  std::uint64_t m_ticks = 0;
  std::uint64_t m_missed_ticks = 0;
};

}  // namespace vmlab::devices
