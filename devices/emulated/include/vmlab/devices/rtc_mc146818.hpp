// The MC146818A real-time clock and its CMOS RAM, as every PC since the AT
// has it at ports 0x70-0x71 (Motorola MC146818A datasheet; QEMU
// hw/rtc/mc146818rtc.c is the model a guest meets under QEMU).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <vmlab/clock.hpp>
#include <vmlab/io_device.hpp>

namespace vmlab::devices {

// Register indices and bits (MC146818A datasheet, "Address Map" and
// "Register A" to "Register D").
namespace mc146818 {
inline constexpr std::uint8_t kSeconds = 0x00;
inline constexpr std::uint8_t kSecondsAlarm = 0x01;
inline constexpr std::uint8_t kMinutes = 0x02;
inline constexpr std::uint8_t kMinutesAlarm = 0x03;
inline constexpr std::uint8_t kHours = 0x04;
inline constexpr std::uint8_t kHoursAlarm = 0x05;
inline constexpr std::uint8_t kDayOfWeek = 0x06;  // 1 = Sunday
inline constexpr std::uint8_t kDayOfMonth = 0x07;
inline constexpr std::uint8_t kMonth = 0x08;
inline constexpr std::uint8_t kYear = 0x09;  // 00-99
inline constexpr std::uint8_t kStatusA = 0x0a;
inline constexpr std::uint8_t kStatusB = 0x0b;
inline constexpr std::uint8_t kStatusC = 0x0c;
inline constexpr std::uint8_t kStatusD = 0x0d;
// CMOS RAM byte the IBM PC AT BIOS keeps the century in (and QEMU, and the
// ACPI FADT's CENTURY field on QEMU's pc machine); 0x37, the PS/2's century
// byte, is an alias of it here as in QEMU.
inline constexpr std::uint8_t kCentury = 0x32;
inline constexpr std::uint8_t kPs2Century = 0x37;

inline constexpr std::uint8_t kStatusAUpdateInProgress = 0x80;   // UIP, read only
inline constexpr std::uint8_t kStatusADividerMask = 0x70;        // DV2-DV0
inline constexpr std::uint8_t kStatusARateMask = 0x0f;           // RS3-RS0
inline constexpr std::uint8_t kStatusBSet = 0x80;                // SET: updates halted
inline constexpr std::uint8_t kStatusBPeriodicInterrupt = 0x40;  // PIE
inline constexpr std::uint8_t kStatusBAlarmInterrupt = 0x20;     // AIE
inline constexpr std::uint8_t kStatusBUpdateInterrupt = 0x10;    // UIE
inline constexpr std::uint8_t kStatusBBinary = 0x04;             // DM: 1 binary, 0 BCD
inline constexpr std::uint8_t kStatusB24Hour = 0x02;             // 24/12: 1 = 24-hour
inline constexpr std::uint8_t kStatusCInterruptRequest = 0x80;   // IRQF
inline constexpr std::uint8_t kStatusCPeriodic = 0x40;           // PF
inline constexpr std::uint8_t kStatusCAlarm = 0x20;              // AF
inline constexpr std::uint8_t kStatusCUpdateEnded = 0x10;        // UF
inline constexpr std::uint8_t kStatusDValidRamAndTime = 0x80;    // VRT
inline constexpr std::uint8_t kAlarmDontCare = 0xc0;  // an alarm byte of 11xxxxxx matches any
}  // namespace mc146818

// Registered on a 2-port range (0x70-0x71 on a PC). Offset 0 is the index
// port: bits 6-0 select one of the 128 registers, bit 7 is the PC's NMI mask
// (kept, and shown by nmi_disabled(); there is no NMI source to mask), and a
// read returns 0xFF, as QEMU's does (on a PC the port is write-only). Offset
// 1 is the data port of the selected register. Wider accesses reach the two
// ports byte by byte, as the ISA bus splits them.
//
// Time: the clock keeps the time since 1970-01-01 00:00:00 UTC (UTC, as
// QEMU's default -rtc base=utc), starting at `unix_time_ns` when the model
// is built and advancing with `clock`, so a test with a FakeClock knows
// every register exactly. Registers 0x00-0x09
// and the century show it in the format status B selects (BCD or binary,
// 24-hour or 12-hour with bit 7 of the hours = PM; day of week 1 = Sunday,
// derived from the date), and while the clock updates (SET clear, divider
// running) a write to one of them sets that field of the clock, keeping the
// fraction of the second. With SET, they hold still and take the guest's
// writes; clearing SET starts the clock from them. Divider values 000-010 in
// status A run the time base (whatever the crystal, as QEMU), 011-111 stop
// it; leaving a stop starts it with the first update half a second away.
// UIP in status A reads 1 during the last 244 us of every second while the
// clock updates (QEMU's rule, the datasheet's 244 us before an update).
// Decoding is QEMU's: BCD digits above 9 are weighted anyway, and values out
// of range carry into the next field, so any bytes give some date.
//
// Status C's flags are set as the datasheet says (UF after each update, PF
// at the rate RS3-RS0 selects, AF when an update matches the alarm bytes, an
// alarm byte of 0xC0-0xFF matching anything; IRQF when a flag meets its
// enable bit in status B) and cleared by reading C. Status C and D are read
// only; D reads VRT = 1. Every other byte, 0x0E-0x7F, is CMOS RAM,
// initially zero. Setting SET clears UIE, as on the part.
//
// Not modelled: IRQ 8 (the flags can be polled; no interrupt is raised),
// the square-wave output, daylight saving (DSE is kept, never acted on),
// and the alarm while SET holds the clock.
//
// Calls are serialized by the board's device lock; nothing here locks.
class Mc146818Rtc final : public IoDevice {
 public:
  static constexpr std::uint64_t kPortCount = 2;
  static constexpr std::size_t kRegisterCount = 128;
  // Status A and B as a PC BIOS leaves them (SeaBIOS, QEMU's reset): the
  // 32.768 kHz time base with a 1024 Hz periodic rate; BCD, 24-hour.
  static constexpr std::uint8_t kResetStatusA = 0x26;
  static constexpr std::uint8_t kResetStatusB = mc146818::kStatusB24Hour;

  Mc146818Rtc(const Clock& clock, std::int64_t unix_time_ns);

  std::string_view name() const override { return "mc146818-rtc"; }
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  std::uint8_t index() const { return m_index; }
  bool nmi_disabled() const { return m_nmi_disabled; }
  // The clock's time now, in whole seconds since the epoch: what the time
  // registers show while it updates.
  std::int64_t unix_seconds() const;
  // SET clear and the time base running.
  bool updating() const;
  // Every read or write of either port: each one is a VM exit or a trap.
  std::uint64_t register_accesses() const { return m_register_accesses; }

 private:
  std::uint8_t read_port(unsigned port);
  void write_port(unsigned port, std::uint8_t value);
  std::uint8_t read_register(std::uint8_t index);
  void write_register(std::uint8_t index, std::uint8_t value);
  void write_status_a(std::uint8_t value);
  void write_status_b(std::uint8_t value);
  void write_time_register(std::uint8_t index, std::uint8_t value);

  // A time of the time base: seconds since the epoch (a guest can set any
  // year up to 16599, past what nanoseconds in 64 bits reach) and the
  // fraction of the second.
  struct Time {
    std::int64_t seconds = 0;
    std::int64_t nanoseconds = 0;  // [0, 1e9)
  };

  bool time_base_runs() const;
  bool update_in_progress() const;
  // The time base at clock time `now`.
  Time time_at(std::uint64_t now) const;
  // Restarts the time base at `time` from clock time `now` on.
  void set_time(Time time, std::uint64_t now);
  // The time registers from `time`, in status B's format.
  void store_time_registers(Time time);
  // The seconds the time registers say, read in the format of `status_b`.
  std::int64_t time_registers_seconds(std::uint8_t status_b) const;
  // Sets status C's flags for what happened since the last call.
  void accumulate_flags(std::uint64_t now);
  bool alarm_matches(std::int64_t second) const;

  const Clock& m_clock;
  std::array<std::uint8_t, kRegisterCount> m_registers{};
  std::uint8_t m_index = 0;
  bool m_nmi_disabled = false;
  // The time base: at clock time m_reference_ns it was at m_base; while it
  // is stopped, m_base is where it stopped.
  Time m_base;
  std::uint64_t m_reference_ns = 0;
  // Status C's flags are accounted up to this time of the time base.
  Time m_flags_through;
  std::uint64_t m_register_accesses = 0;
};

}  // namespace vmlab::devices
