#include <vmlab/devices/pit8254.hpp>

#include <limits>
#include <utility>

#include "byte_access.hpp"

namespace vmlab::devices {
namespace {

constexpr unsigned kControlPort = 3;
constexpr std::uint64_t kNanosecondsPerSecond = 1'000'000'000;
constexpr std::uint32_t kBinaryModulus = 65536;
constexpr std::uint32_t kBcdModulus = 10000;

// Control word fields (8254 datasheet, Figure 7 and "Read-Back Command").
constexpr unsigned kSelectReadBack = 3;           // SC1 SC0 = 11
constexpr std::uint8_t kReadBackNoCount = 0x20;   // COUNT bit, active low
constexpr std::uint8_t kReadBackNoStatus = 0x10;  // STATUS bit, active low
constexpr std::uint8_t kStatusOutput = 0x80;
constexpr std::uint8_t kStatusNullCount = 0x40;

// 128-bit intermediates: nanoseconds times 1.19 MHz overflows 64 bits after
// about four hours of uptime.
using Wide = unsigned __int128;

std::uint64_t tick_at(std::uint64_t now_ns) {
  return static_cast<std::uint64_t>(static_cast<Wide>(now_ns) * Pit8254::kInputFrequencyHz /
                                    kNanosecondsPerSecond);
}

// The first nanosecond at which tick_at() reaches `tick`.
std::uint64_t nanoseconds_at(std::uint64_t tick) {
  const Wide nanoseconds =
      (static_cast<Wide>(tick) * kNanosecondsPerSecond + Pit8254::kInputFrequencyHz - 1) /
      Pit8254::kInputFrequencyHz;
  if (nanoseconds > std::numeric_limits<std::uint64_t>::max()) {
    return std::numeric_limits<std::uint64_t>::max();
  }
  return static_cast<std::uint64_t>(nanoseconds);
}

std::uint32_t from_bcd(std::uint16_t digits) {
  // Digits above 9 are not valid BCD; they are weighted anyway, so a guest
  // that writes them gets some count rather than a crash.
  return static_cast<std::uint32_t>((digits & 0xf) + 10 * ((digits >> 4) & 0xf) +
                                    100 * ((digits >> 8) & 0xf) + 1000 * ((digits >> 12) & 0xf));
}

std::uint16_t to_bcd(std::uint32_t value) {
  value %= kBcdModulus;
  return static_cast<std::uint16_t>((value % 10) | ((value / 10 % 10) << 4) |
                                    ((value / 100 % 10) << 8) | ((value / 1000) << 12));
}

// Rising OUT edges of a periodic counter (modes 2 and 3) come at the end of
// every period: start + k * count for k >= 1. The number up to `tick`:
std::uint64_t periodic_edges_through(std::uint64_t start_tick, std::uint32_t count,
                                     std::uint64_t tick) {
  if (tick < start_tick || count == 0) return 0;
  return (tick - start_tick) / count;
}

}  // namespace

Pit8254::Pit8254(const Clock& clock, IrqLine irq0) : m_clock(clock), m_irq0(std::move(irq0)) {}

void Pit8254::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  detail::read_registers(offset, data, kRegisterCount, [this](unsigned port) -> std::uint8_t {
    // The control word register cannot be read (datasheet, Table 1: "No
    // operation"); QEMU returns 0 for it, and so does this model.
    if (port == kControlPort) return 0;
    return read_counter(m_counters[port]);
  });
}

void Pit8254::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  detail::write_registers(offset, data, kRegisterCount, [this](unsigned port, std::uint8_t value) {
    if (port == kControlPort) {
      write_control(value);
    } else {
      write_counter(port, value);
    }
  });
}

std::optional<std::uint64_t> Pit8254::next_event_ns() const {
  const std::optional<std::uint64_t> edge = next_edge_after(m_counters[0], m_accounted_tick);
  if (!edge) return std::nullopt;
  return nanoseconds_at(*edge);
}

void Pit8254::update(std::uint64_t now_ns) {
  account_edges(tick_at(now_ns));
}

void Pit8254::account_edges(std::uint64_t tick) {
  if (tick <= m_accounted_tick) return;
  const std::uint64_t due = edges_between(m_counters[0], m_accounted_tick, tick);
  m_accounted_tick = tick;
  settle(m_counters[0], tick);
  if (due == 0) return;
  ++m_ticks;
  m_missed_ticks += due - 1;
  if (m_irq0) {
    m_irq0(true);
    m_irq0(false);
  }
}

std::uint8_t Pit8254::read_counter(Counter& counter) {
  if (counter.status_latched) {
    // With both latched, the status byte comes first (read-back command).
    counter.status_latched = false;
    return counter.latched_status;
  }
  if (counter.count_latched) {
    const std::uint8_t low = static_cast<std::uint8_t>(counter.latched_count & 0xff);
    const std::uint8_t high = static_cast<std::uint8_t>(counter.latched_count >> 8);
    switch (counter.access) {
      case Access::LowByte:
        counter.count_latched = false;
        return low;
      case Access::HighByte:
        counter.count_latched = false;
        return high;
      case Access::LowThenHigh:
        if (!counter.latched_high_next) {
          counter.latched_high_next = true;
          return low;
        }
        counter.latched_high_next = false;
        counter.count_latched = false;
        return high;
    }
    return 0;
  }
  const std::uint16_t value = readable_value(counter, current_tick());
  const std::uint8_t low = static_cast<std::uint8_t>(value & 0xff);
  const std::uint8_t high = static_cast<std::uint8_t>(value >> 8);
  switch (counter.access) {
    case Access::LowByte:
      return low;
    case Access::HighByte:
      return high;
    case Access::LowThenHigh:
      counter.read_high_next = !counter.read_high_next;
      return counter.read_high_next ? low : high;
  }
  return 0;
}

void Pit8254::write_counter(unsigned index, std::uint8_t value) {
  Counter& counter = m_counters[index];
  const std::uint64_t tick = current_tick();
  if (index == 0) account_edges(tick);
  settle(counter, tick);

  switch (counter.access) {
    case Access::LowByte:
      load_count(counter, value, tick);
      return;
    case Access::HighByte:
      load_count(counter, static_cast<std::uint16_t>(value << 8), tick);
      return;
    case Access::LowThenHigh:
      if (!counter.write_high_next) {
        counter.count_low_byte = value;
        counter.write_high_next = true;
        // Mode 0: writing the first byte of a new count disables counting
        // until the second arrives (datasheet, Mode 0).
        if (counter.mode == Mode::InterruptOnTerminalCount) stop_counting(counter, tick);
        return;
      }
      counter.write_high_next = false;
      load_count(counter, static_cast<std::uint16_t>(counter.count_low_byte | (value << 8)), tick);
      return;
  }
}

void Pit8254::load_count(Counter& counter, std::uint16_t raw_count, std::uint64_t tick) {
  // A count of 0 is the largest: 2^16 in binary, 10^4 in BCD.
  std::uint32_t count = counter.bcd ? from_bcd(raw_count) : raw_count;
  if (count == 0) count = counter.bcd ? kBcdModulus : kBinaryModulus;

  switch (counter.mode) {
    case Mode::InterruptOnTerminalCount:
    case Mode::SoftwareTriggeredStrobe:
      // A new count restarts these one-shot modes (datasheet, Modes 0 and 4).
      counter.counting = true;
      counter.segment = Segment{tick, count};
      counter.next_segment.reset();
      return;
    case Mode::RateGenerator:
    case Mode::SquareWave:
      if (!counter.counting) {
        counter.counting = true;
        counter.segment = Segment{tick, count};
        counter.next_segment.reset();
        return;
      }
      // Writing a count while counting does not disturb the current period;
      // the counter reloads with it when the period ends (datasheet, Mode 2).
      if (counter.next_segment) {
        counter.next_segment->count = count;
      } else {
        const Segment& current = counter.segment;
        const std::uint64_t period_end =
            current.start_tick +
            (periodic_edges_through(current.start_tick, current.count, tick) + 1) * current.count;
        counter.next_segment = Segment{period_end, count};
      }
      return;
    case Mode::HardwareRetriggerableOneShot:
    case Mode::HardwareTriggeredStrobe:
      // These wait for a rising GATE edge, which never comes (see header).
      return;
  }
}

void Pit8254::write_control(std::uint8_t value) {
  const unsigned select = value >> 6;
  const std::uint64_t tick = current_tick();
  account_edges(tick);

  if (select == kSelectReadBack) {
    // Read-back: bits 3-1 select counters 2-0; COUNT and STATUS are active
    // low. A counter already latched keeps its first latch.
    for (unsigned index = 0; index < m_counters.size(); ++index) {
      if ((value & (0x02u << index)) == 0) continue;
      Counter& counter = m_counters[index];
      settle(counter, tick);
      if ((value & kReadBackNoCount) == 0) latch_count(counter, tick);
      if ((value & kReadBackNoStatus) == 0 && !counter.status_latched) {
        counter.status_latched = true;
        counter.latched_status = status(counter, tick);
      }
    }
    return;
  }

  Counter& counter = m_counters[select];
  settle(counter, tick);
  const unsigned access_bits = (value >> 4) & 0x3u;
  if (access_bits == 0) {
    latch_count(counter, tick);  // counter latch command
    return;
  }

  // A control word resets the counter's control logic and sets OUT to its
  // initial state; counting resumes only when a count is written.
  stop_counting(counter, tick);
  counter.access = static_cast<Access>(access_bits);
  counter.mode_bits = static_cast<std::uint8_t>((value >> 1) & 0x7u);
  switch (counter.mode_bits) {
    case 0:
      counter.mode = Mode::InterruptOnTerminalCount;
      break;
    case 1:
      counter.mode = Mode::HardwareRetriggerableOneShot;
      break;
    case 2:
    case 6:  // "X" bit: 110 is mode 2
      counter.mode = Mode::RateGenerator;
      break;
    case 3:
    case 7:  // 111 is mode 3
      counter.mode = Mode::SquareWave;
      break;
    case 4:
      counter.mode = Mode::SoftwareTriggeredStrobe;
      break;
    default:
      counter.mode = Mode::HardwareTriggeredStrobe;
      break;
  }
  counter.bcd = (value & 0x01) != 0;
  counter.write_high_next = false;
  counter.read_high_next = false;
  counter.count_latched = false;
  counter.latched_high_next = false;
  counter.status_latched = false;
}

void Pit8254::latch_count(Counter& counter, std::uint64_t tick) {
  // A second latch before the first is read is ignored (datasheet, "Counter
  // Latch Command").
  if (counter.count_latched) return;
  counter.count_latched = true;
  counter.latched_count = readable_value(counter, tick);
  counter.latched_high_next = false;
}

void Pit8254::stop_counting(Counter& counter, std::uint64_t tick) {
  counter.stopped_value = counting_element(counter, tick);
  counter.counting = false;
  counter.next_segment.reset();
}

void Pit8254::settle(Counter& counter, std::uint64_t tick) {
  if (counter.next_segment && tick >= counter.next_segment->start_tick) {
    counter.segment = *counter.next_segment;
    counter.next_segment.reset();
  }
}

std::uint64_t Pit8254::current_tick() const {
  return tick_at(m_clock.now_ns());
}

std::uint32_t Pit8254::counting_element(const Counter& counter, std::uint64_t tick) const {
  if (!counter.counting) return counter.stopped_value;
  const Segment& segment = counter.next_segment && tick >= counter.next_segment->start_tick
                               ? *counter.next_segment
                               : counter.segment;
  const std::uint32_t modulus = counter.bcd ? kBcdModulus : kBinaryModulus;
  const std::uint64_t elapsed = tick >= segment.start_tick ? tick - segment.start_tick : 0;
  const std::uint32_t count = segment.count;
  switch (counter.mode) {
    case Mode::InterruptOnTerminalCount:
    case Mode::SoftwareTriggeredStrobe:
      // Counts down through 0 and wraps, OUT staying as it is (Modes 0, 4).
      return static_cast<std::uint32_t>((count + modulus - elapsed % modulus) % modulus);
    case Mode::RateGenerator:
      // N, N-1, ..., 1, then reload N.
      return (count - static_cast<std::uint32_t>(elapsed % count)) % modulus;
    case Mode::SquareWave: {
      // Decrements by two (datasheet, Mode 3). Even N: N, N-2, ..., 2 in each
      // half. Odd N: N-1, N-3, ..., 0 with OUT high for (N+1)/2 clocks, then
      // N-1, ..., 2 with OUT low for (N-1)/2 clocks.
      const std::uint32_t phase = static_cast<std::uint32_t>(elapsed % count);
      if (count % 2 == 0) return (count - 2 * (phase % (count / 2))) % modulus;
      const std::uint32_t high_length = (count + 1) / 2;
      const std::uint32_t half_phase = phase < high_length ? phase : phase - high_length;
      return (count - 1 - 2 * half_phase) % modulus;
    }
    case Mode::HardwareRetriggerableOneShot:
    case Mode::HardwareTriggeredStrobe:
      return counter.stopped_value;
  }
  return 0;
}

std::uint16_t Pit8254::readable_value(const Counter& counter, std::uint64_t tick) const {
  const std::uint32_t value = counting_element(counter, tick);
  if (counter.bcd) return to_bcd(value);
  return static_cast<std::uint16_t>(value & 0xffff);
}

bool Pit8254::output(const Counter& counter, std::uint64_t tick) const {
  if (!counter.counting) {
    // After a control word OUT is low in mode 0 and high in every other mode;
    // modes 1 and 5 stay high while waiting for a trigger.
    return counter.mode != Mode::InterruptOnTerminalCount;
  }
  const Segment& segment = counter.next_segment && tick >= counter.next_segment->start_tick
                               ? *counter.next_segment
                               : counter.segment;
  const std::uint64_t elapsed = tick >= segment.start_tick ? tick - segment.start_tick : 0;
  const std::uint32_t count = segment.count;
  switch (counter.mode) {
    case Mode::InterruptOnTerminalCount:
      return elapsed >= count;  // goes high at terminal count and stays high
    case Mode::SoftwareTriggeredStrobe:
      return elapsed != count;  // one clock low at terminal count
    case Mode::RateGenerator:
      return elapsed % count != count - 1;  // low while the count is 1
    case Mode::SquareWave:
      return elapsed % count < (count + 1) / 2;  // high for the first half
    case Mode::HardwareRetriggerableOneShot:
    case Mode::HardwareTriggeredStrobe:
      return true;
  }
  return true;
}

bool Pit8254::null_count(const Counter& counter, std::uint64_t tick) const {
  // NULL COUNT is set when a count is written and cleared when it reaches
  // the counting element (datasheet, "Status Byte").
  if (!counter.counting) return true;
  return counter.next_segment && tick < counter.next_segment->start_tick;
}

std::uint8_t Pit8254::status(const Counter& counter, std::uint64_t tick) const {
  std::uint8_t byte = static_cast<std::uint8_t>((static_cast<unsigned>(counter.access) << 4) |
                                                (static_cast<unsigned>(counter.mode_bits) << 1));
  if (counter.bcd) byte |= 0x01;
  if (output(counter, tick)) byte |= kStatusOutput;
  if (null_count(counter, tick)) byte |= kStatusNullCount;
  return byte;
}

std::uint64_t Pit8254::edges_between(const Counter& counter, std::uint64_t after_tick,
                                     std::uint64_t through_tick) const {
  if (!counter.counting || through_tick <= after_tick) return 0;
  const Segment& segment = counter.segment;
  switch (counter.mode) {
    case Mode::InterruptOnTerminalCount:
    case Mode::SoftwareTriggeredStrobe: {
      const std::uint64_t edge = one_shot_edge(counter);
      return edge > after_tick && edge <= through_tick ? 1 : 0;
    }
    case Mode::RateGenerator:
    case Mode::SquareWave: {
      // The current segment's edges up to the reload (inclusive), then the
      // next segment's.
      std::uint64_t current_end = through_tick;
      if (counter.next_segment && counter.next_segment->start_tick < current_end) {
        current_end = counter.next_segment->start_tick;
      }
      std::uint64_t edges = 0;
      if (current_end > after_tick) {
        edges += periodic_edges_through(segment.start_tick, segment.count, current_end) -
                 periodic_edges_through(segment.start_tick, segment.count, after_tick);
      }
      if (counter.next_segment) {
        const Segment& next = *counter.next_segment;
        const std::uint64_t from = after_tick > next.start_tick ? after_tick : next.start_tick;
        if (through_tick > from) {
          edges += periodic_edges_through(next.start_tick, next.count, through_tick) -
                   periodic_edges_through(next.start_tick, next.count, from);
        }
      }
      return edges;
    }
    case Mode::HardwareRetriggerableOneShot:
    case Mode::HardwareTriggeredStrobe:
      return 0;
  }
  return 0;
}

std::uint64_t Pit8254::one_shot_edge(const Counter& counter) {
  // OUT rises at terminal count in mode 0, one clock after it in mode 4.
  return counter.segment.start_tick + counter.segment.count +
         (counter.mode == Mode::SoftwareTriggeredStrobe ? 1 : 0);
}

std::optional<std::uint64_t> Pit8254::next_edge_after(const Counter& counter,
                                                      std::uint64_t tick) const {
  if (!counter.counting) return std::nullopt;
  const Segment& segment = counter.segment;
  switch (counter.mode) {
    case Mode::InterruptOnTerminalCount:
    case Mode::SoftwareTriggeredStrobe: {
      const std::uint64_t edge = one_shot_edge(counter);
      if (edge > tick) return edge;
      return std::nullopt;
    }
    case Mode::RateGenerator:
    case Mode::SquareWave: {
      const Segment& active = counter.next_segment && tick >= counter.next_segment->start_tick
                                  ? *counter.next_segment
                                  : segment;
      // The next multiple of the period after `tick`; a pending reload lies
      // on a period boundary of the current segment, so this never skips it.
      return active.start_tick +
             (periodic_edges_through(active.start_tick, active.count, tick) + 1) * active.count;
    }
    case Mode::HardwareRetriggerableOneShot:
    case Mode::HardwareTriggeredStrobe:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace vmlab::devices
