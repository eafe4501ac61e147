#include <vmlab/devices/rtc_mc146818.hpp>

#include <algorithm>

#include "byte_access.hpp"

namespace vmlab::devices {
namespace {

using namespace mc146818;  // NOLINT(google-build-using-namespace): the register map

constexpr unsigned kIndexPort = 0;
constexpr std::uint8_t kIndexMask = 0x7f;
constexpr std::uint8_t kNmiDisable = 0x80;
constexpr std::uint8_t kIndexPortReadValue = 0xff;  // QEMU's cmos_ioport_read
constexpr std::uint8_t kHoursPm = 0x80;
constexpr std::uint8_t kInterruptFlags = kStatusCPeriodic | kStatusCAlarm | kStatusCUpdateEnded;
static_assert(kInterruptFlags ==
                  (kStatusBPeriodicInterrupt | kStatusBAlarmInterrupt | kStatusBUpdateInterrupt),
              "each flag in status C sits where its enable bit sits in status B");

constexpr std::int64_t kNanosecondsPerSecond = 1'000'000'000;
constexpr std::int64_t kSecondsPerDay = 86'400;
constexpr std::int64_t kTimeBaseHz = 32'768;
// UIP rises 244 us (8 cycles of the time base) before an update cycle.
constexpr std::int64_t kUpdateInProgressNs = 8 * kNanosecondsPerSecond / kTimeBaseHz;
// Leaving a divider stop, the first update comes half a second later.
constexpr std::int64_t kHalfSecondNs = kNanosecondsPerSecond / 2;
// A day of updates passes every time of day an alarm can name.
constexpr std::int64_t kLongestAlarmScan = kSecondsPerDay;

std::int64_t floor_divide(std::int64_t numerator, std::int64_t denominator) {
  std::int64_t quotient = numerator / denominator;
  if (numerator % denominator != 0 && (numerator < 0) != (denominator < 0)) --quotient;
  return quotient;
}

std::int64_t floor_modulo(std::int64_t numerator, std::int64_t denominator) {
  return numerator - floor_divide(numerator, denominator) * denominator;
}

// Days since 1970-01-01 of a date in the proleptic Gregorian calendar, and
// back (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
std::int64_t days_from_civil(std::int64_t year, std::int64_t month, std::int64_t day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = floor_divide(year, 400);
  const std::int64_t year_of_era = year - era * 400;
  const std::int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const std::int64_t day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146'097 + day_of_era - 719'468;
}

struct CivilTime {
  std::int64_t year = 1970;
  unsigned month = 1;  // 1-12
  unsigned day = 1;    // 1-31
  unsigned hour = 0;
  unsigned minute = 0;
  unsigned second = 0;
  unsigned weekday = 4;  // 0 = Sunday
};

CivilTime civil_from_seconds(std::int64_t seconds) {
  const std::int64_t days = floor_divide(seconds, kSecondsPerDay);
  const std::int64_t second_of_day = seconds - days * kSecondsPerDay;
  const std::int64_t shifted = days + 719'468;
  const std::int64_t era = floor_divide(shifted, 146'097);
  const std::int64_t day_of_era = shifted - era * 146'097;
  const std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  const std::int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t month_from_march = (5 * day_of_year + 2) / 153;
  CivilTime civil;
  civil.day = static_cast<unsigned>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  civil.month =
      static_cast<unsigned>(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  civil.year = year_of_era + era * 400 + (civil.month <= 2 ? 1 : 0);
  civil.hour = static_cast<unsigned>(second_of_day / 3600);
  civil.minute = static_cast<unsigned>(second_of_day / 60 % 60);
  civil.second = static_cast<unsigned>(second_of_day % 60);
  civil.weekday = static_cast<unsigned>(floor_modulo(days + 4, 7));  // 1970-01-01: a Thursday
  return civil;
}

// Any field values give a time: months past 12 carry into the year, days,
// hours, minutes and seconds past their range into the next field, as
// QEMU's mktimegm does.
std::int64_t seconds_from_fields(std::int64_t year, std::int64_t month, std::int64_t day,
                                 std::int64_t hour, std::int64_t minute, std::int64_t second) {
  year += floor_divide(month - 1, 12);
  month = floor_modulo(month - 1, 12) + 1;
  const std::int64_t days = days_from_civil(year, month, 1) + day - 1;
  return days * kSecondsPerDay + hour * 3600 + minute * 60 + second;
}

std::uint8_t encode(unsigned value, bool binary) {
  value %= 100;
  return static_cast<std::uint8_t>(binary ? value : ((value / 10) << 4) | (value % 10));
}

// BCD digits above 9 are weighted anyway (QEMU's rtc_from_bcd).
std::int64_t decode(std::uint8_t value, bool binary) {
  return binary ? value : (value >> 4) * 10 + (value & 0x0f);
}

std::uint8_t encode_hours(unsigned hour, std::uint8_t status_b) {
  const bool binary = (status_b & kStatusBBinary) != 0;
  if ((status_b & kStatusB24Hour) != 0) return encode(hour, binary);
  const unsigned twelve_hour = hour % 12 == 0 ? 12 : hour % 12;
  return static_cast<std::uint8_t>(encode(twelve_hour, binary) | (hour >= 12 ? kHoursPm : 0));
}

bool is_time_register(std::uint8_t index) {
  switch (index) {
    case kSeconds:
    case kMinutes:
    case kHours:
    case kDayOfWeek:
    case kDayOfMonth:
    case kMonth:
    case kYear:
    case kCentury:
      return true;
    default:
      return false;
  }
}

// The periodic rate RS3-RS0 selects, in cycles of the 32.768 kHz time base
// (datasheet Table 3: 1 and 2 give 256 and 128 Hz, 3-15 give 8192 Hz down
// to 2 Hz); 0 for none.
std::int64_t periodic_period(std::uint8_t status_a) {
  const unsigned rate = status_a & kStatusARateMask;
  if (rate == 0) return 0;
  return std::int64_t{1} << (rate <= 2 ? rate + 6 : rate - 1);
}

}  // namespace

Mc146818Rtc::Mc146818Rtc(const Clock& clock, std::int64_t unix_time_ns) : m_clock(clock) {
  m_registers[kStatusA] = kResetStatusA;
  m_registers[kStatusB] = kResetStatusB;
  m_registers[kStatusD] = kStatusDValidRamAndTime;
  set_time({floor_divide(unix_time_ns, kNanosecondsPerSecond),
            floor_modulo(unix_time_ns, kNanosecondsPerSecond)},
           m_clock.now_ns());
  m_flags_through = m_base;
  store_time_registers(m_base);
}

void Mc146818Rtc::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  detail::read_registers(offset, data, kPortCount,
                         [this](unsigned port) { return read_port(port); });
}

void Mc146818Rtc::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  detail::write_registers(offset, data, kPortCount,
                          [this](unsigned port, std::uint8_t value) { write_port(port, value); });
}

std::int64_t Mc146818Rtc::unix_seconds() const {
  return time_at(m_clock.now_ns()).seconds;
}

bool Mc146818Rtc::time_base_runs() const {
  // DV2-DV0 = 000, 001 or 010: one of the three time bases (QEMU runs the
  // clock at the right rate for any of them); 011-111 test modes and the
  // divider reset, which hold it.
  return (m_registers[kStatusA] & kStatusADividerMask) <= 0x20;
}

bool Mc146818Rtc::updating() const {
  return time_base_runs() && (m_registers[kStatusB] & kStatusBSet) == 0;
}

bool Mc146818Rtc::update_in_progress() const {
  return updating() &&
         time_at(m_clock.now_ns()).nanoseconds >= kNanosecondsPerSecond - kUpdateInProgressNs;
}

Mc146818Rtc::Time Mc146818Rtc::time_at(std::uint64_t now) const {
  if (!time_base_runs()) return m_base;
  const std::uint64_t elapsed = now > m_reference_ns ? now - m_reference_ns : 0;
  const auto per_second = static_cast<std::uint64_t>(kNanosecondsPerSecond);
  Time time = m_base;
  time.seconds += static_cast<std::int64_t>(elapsed / per_second);
  time.nanoseconds += static_cast<std::int64_t>(elapsed % per_second);
  if (time.nanoseconds >= kNanosecondsPerSecond) {
    ++time.seconds;
    time.nanoseconds -= kNanosecondsPerSecond;
  }
  return time;
}

void Mc146818Rtc::set_time(Time time, std::uint64_t now) {
  m_base = time;
  m_reference_ns = now;
}

void Mc146818Rtc::store_time_registers(Time time) {
  const CivilTime civil = civil_from_seconds(time.seconds);
  const std::uint8_t status_b = m_registers[kStatusB];
  const bool binary = (status_b & kStatusBBinary) != 0;
  m_registers[kSeconds] = encode(civil.second, binary);
  m_registers[kMinutes] = encode(civil.minute, binary);
  m_registers[kHours] = encode_hours(civil.hour, status_b);
  m_registers[kDayOfWeek] = encode(civil.weekday + 1, binary);
  m_registers[kDayOfMonth] = encode(civil.day, binary);
  m_registers[kMonth] = encode(civil.month, binary);
  m_registers[kYear] = encode(static_cast<unsigned>(floor_modulo(civil.year, 100)), binary);
  m_registers[kCentury] =
      encode(static_cast<unsigned>(floor_modulo(floor_divide(civil.year, 100), 100)), binary);
}

std::int64_t Mc146818Rtc::time_registers_seconds(std::uint8_t status_b) const {
  const bool binary = (status_b & kStatusBBinary) != 0;
  const std::uint8_t hours = m_registers[kHours];
  std::int64_t hour = decode(static_cast<std::uint8_t>(hours & ~kHoursPm), binary);
  if ((status_b & kStatusB24Hour) == 0) {
    hour %= 12;
    if ((hours & kHoursPm) != 0) hour += 12;
  }
  const std::int64_t year =
      decode(m_registers[kCentury], binary) * 100 + decode(m_registers[kYear], binary);
  return seconds_from_fields(
      year, decode(m_registers[kMonth], binary), decode(m_registers[kDayOfMonth], binary), hour,
      decode(m_registers[kMinutes], binary), decode(m_registers[kSeconds], binary));
}

bool Mc146818Rtc::alarm_matches(std::int64_t second) const {
  const CivilTime civil = civil_from_seconds(second);
  const std::uint8_t status_b = m_registers[kStatusB];
  const bool binary = (status_b & kStatusBBinary) != 0;
  const auto matches = [](std::uint8_t alarm, std::uint8_t time) {
    return (alarm & kAlarmDontCare) == kAlarmDontCare || alarm == time;
  };
  return matches(m_registers[kSecondsAlarm], encode(civil.second, binary)) &&
         matches(m_registers[kMinutesAlarm], encode(civil.minute, binary)) &&
         matches(m_registers[kHoursAlarm], encode_hours(civil.hour, status_b));
}

void Mc146818Rtc::accumulate_flags(std::uint64_t now) {
  // A held time base makes no updates and no periodic edges; the account
  // resumes where the base restarts.
  if (!time_base_runs()) return;
  const Time current = time_at(now);
  const Time previous = m_flags_through;
  m_flags_through = current;
  std::uint8_t flags = 0;
  if (current.seconds > previous.seconds) {
    flags |= kStatusCUpdateEnded;
    if (updating()) {
      const std::int64_t first =
          std::max(previous.seconds + 1, current.seconds - kLongestAlarmScan + 1);
      for (std::int64_t second = first; second <= current.seconds; ++second) {
        if (alarm_matches(second)) {
          flags |= kStatusCAlarm;
          break;
        }
      }
    }
  }
  if (const std::int64_t period = periodic_period(m_registers[kStatusA]); period != 0) {
    const auto cycles = [](const Time& time) {
      return time.seconds * kTimeBaseHz + time.nanoseconds * kTimeBaseHz / kNanosecondsPerSecond;
    };
    if (floor_divide(cycles(current), period) > floor_divide(cycles(previous), period)) {
      flags |= kStatusCPeriodic;
    }
  }
  m_registers[kStatusC] |= flags;
  if ((m_registers[kStatusC] & m_registers[kStatusB] & kInterruptFlags) != 0) {
    m_registers[kStatusC] |= kStatusCInterruptRequest;
  }
}

std::uint8_t Mc146818Rtc::read_port(unsigned port) {
  ++m_register_accesses;
  if (port == kIndexPort) return kIndexPortReadValue;
  return read_register(m_index);
}

void Mc146818Rtc::write_port(unsigned port, std::uint8_t value) {
  ++m_register_accesses;
  if (port == kIndexPort) {
    m_index = value & kIndexMask;
    m_nmi_disabled = (value & kNmiDisable) != 0;
    return;
  }
  write_register(m_index, value);
}

std::uint8_t Mc146818Rtc::read_register(std::uint8_t index) {
  if (index == kPs2Century) index = kCentury;
  if (is_time_register(index)) {
    if (updating()) store_time_registers(time_at(m_clock.now_ns()));
    return m_registers[index];
  }
  switch (index) {
    case kStatusA:
      return static_cast<std::uint8_t>((m_registers[kStatusA] & ~kStatusAUpdateInProgress) |
                                       (update_in_progress() ? kStatusAUpdateInProgress : 0));
    case kStatusC: {
      accumulate_flags(m_clock.now_ns());
      const std::uint8_t flags = m_registers[kStatusC];
      m_registers[kStatusC] = 0;
      return flags;
    }
    case kStatusD:
      return kStatusDValidRamAndTime;
    default:
      return m_registers[index];
  }
}

void Mc146818Rtc::write_register(std::uint8_t index, std::uint8_t value) {
  if (index == kPs2Century) index = kCentury;
  if (is_time_register(index)) {
    write_time_register(index, value);
    return;
  }
  switch (index) {
    case kStatusA:
      write_status_a(value);
      return;
    case kStatusB:
      write_status_b(value);
      return;
    case kStatusC:
    case kStatusD:
      return;  // read only
    default:
      m_registers[index] = value;
      return;
  }
}

void Mc146818Rtc::write_time_register(std::uint8_t index, std::uint8_t value) {
  if (!updating()) {
    m_registers[index] = value;  // held: the guest sets the time field by field
    return;
  }
  // The clock takes the new field at once and keeps counting from it, the
  // fraction of the second unchanged.
  const std::uint64_t now = m_clock.now_ns();
  accumulate_flags(now);
  const Time current = time_at(now);
  store_time_registers(current);
  m_registers[index] = value;
  set_time({time_registers_seconds(m_registers[kStatusB]), current.nanoseconds}, now);
  m_flags_through = m_base;
}

void Mc146818Rtc::write_status_a(std::uint8_t value) {
  const std::uint64_t now = m_clock.now_ns();
  accumulate_flags(now);
  const bool was_running = time_base_runs();
  const Time current = time_at(now);
  if (updating()) store_time_registers(current);  // they hold what they showed
  m_registers[kStatusA] = value & static_cast<std::uint8_t>(~kStatusAUpdateInProgress);
  const bool runs = time_base_runs();
  if (was_running && !runs) {
    m_base = current;
  } else if (!was_running && runs) {
    set_time({time_registers_seconds(m_registers[kStatusB]), kHalfSecondNs}, now);
    m_flags_through = m_base;
  }
}

void Mc146818Rtc::write_status_b(std::uint8_t value) {
  const std::uint64_t now = m_clock.now_ns();
  accumulate_flags(now);
  const std::uint8_t previous = m_registers[kStatusB];
  const Time current = time_at(now);
  if ((value & kStatusBSet) != 0) {
    if (updating()) store_time_registers(current);
    value = static_cast<std::uint8_t>(value & ~kStatusBUpdateInterrupt);
  } else if ((previous & kStatusBSet) != 0 && time_base_runs()) {
    // The time the guest set, read in the format it was written in; the
    // divider chain ran on under SET, so the fraction goes on.
    set_time({time_registers_seconds(previous), current.nanoseconds}, now);
    m_flags_through = m_base;
  }
  m_registers[kStatusB] = value;
}

}  // namespace vmlab::devices
