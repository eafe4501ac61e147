// The MC146818 RTC with a fake clock: every register known exactly.
#include <vmlab/devices/rtc_mc146818.hpp>

#include <gtest/gtest.h>

#include "byte_access.hpp"

#include <cstdint>
#include <ostream>
#include <span>
#include <utility>

#include <vmlab/clock.hpp>

namespace vmlab::devices {
namespace {

using namespace mc146818;  // NOLINT(google-build-using-namespace)

constexpr std::int64_t kSecond = 1'000'000'000;
// 2026-12-01 23:01:02 UTC, a Tuesday.
constexpr std::int64_t kTuesdayEvening = 1'796'166'062;

using testing::in;
using testing::out;

std::uint8_t read_register(Mc146818Rtc& rtc, std::uint8_t index) {
  out(rtc, 0, index);
  return in(rtc, 1);
}

void write_register(Mc146818Rtc& rtc, std::uint8_t index, std::uint8_t value) {
  out(rtc, 0, index);
  out(rtc, 1, value);
}

struct Date {
  std::uint8_t second, minute, hour, weekday, day, month, year, century;
  bool operator==(const Date&) const = default;
};

Date read_date(Mc146818Rtc& rtc) {
  return {read_register(rtc, kSeconds),    read_register(rtc, kMinutes),
          read_register(rtc, kHours),      read_register(rtc, kDayOfWeek),
          read_register(rtc, kDayOfMonth), read_register(rtc, kMonth),
          read_register(rtc, kYear),       read_register(rtc, kCentury)};
}

std::ostream& operator<<(std::ostream& stream, const Date& date) {
  return stream << std::hex << "sec=" << unsigned{date.second} << " min=" << unsigned{date.minute}
                << " hour=" << unsigned{date.hour} << " wday=" << unsigned{date.weekday}
                << " day=" << unsigned{date.day} << " month=" << unsigned{date.month}
                << " year=" << unsigned{date.year} << " century=" << unsigned{date.century};
}

class RtcTest : public ::testing::Test {
 protected:
  // Half a second into the second, clear of UIP.
  void SetUp() override { m_clock.set_ns(1'000 * kSecond); }
  Mc146818Rtc make(std::int64_t unix_seconds, std::int64_t fraction_ns = kSecond / 2) {
    return Mc146818Rtc(m_clock, unix_seconds * kSecond + fraction_ns);
  }
  FakeClock m_clock;
};

TEST_F(RtcTest, StartsAsAPcBiosLeavesIt) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  EXPECT_EQ(read_register(rtc, kStatusA), 0x26) << "32.768 kHz time base, 1024 Hz rate";
  EXPECT_EQ(read_register(rtc, kStatusB), 0x02) << "BCD, 24-hour";
  EXPECT_EQ(read_register(rtc, kStatusC), 0x00);
  EXPECT_EQ(read_register(rtc, kStatusD), 0x80) << "VRT: valid RAM and time";
  EXPECT_TRUE(rtc.updating());
  EXPECT_EQ(rtc.unix_seconds(), kTuesdayEvening);
  EXPECT_EQ(read_register(rtc, 0x0e), 0) << "CMOS RAM starts zeroed";
}

TEST_F(RtcTest, ReadsTheDateInBcd) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  EXPECT_EQ(read_date(rtc), (Date{0x02, 0x01, 0x23, 3, 0x01, 0x12, 0x26, 0x20}));
}

TEST_F(RtcTest, ReadsTheDateInBinary) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBBinary);
  EXPECT_EQ(read_date(rtc), (Date{2, 1, 23, 3, 1, 12, 26, 20}));
}

TEST_F(RtcTest, TwelveHourModeMarksPmInBitSeven) {
  struct Case {
    std::int64_t hour;
    std::uint8_t bcd;
    std::uint8_t binary;
  };
  const std::int64_t midnight = kTuesdayEvening - (23 * 3600 + 62);
  for (const Case& expected : {Case{0, 0x12, 12}, Case{1, 0x01, 1}, Case{11, 0x11, 11},
                               Case{12, 0x92, 0x8c}, Case{13, 0x81, 0x81}, Case{23, 0x91, 0x8b}}) {
    Mc146818Rtc rtc = make(midnight + expected.hour * 3600);
    write_register(rtc, kStatusB, 0);
    EXPECT_EQ(read_register(rtc, kHours), expected.bcd) << "hour " << expected.hour;
    write_register(rtc, kStatusB, kStatusBBinary);
    EXPECT_EQ(read_register(rtc, kHours), expected.binary) << "hour " << expected.hour;
  }
}

TEST_F(RtcTest, SecondsAdvanceWithTheClock) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x03);
  m_clock.advance_ns(57 * kSecond);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x00);
  EXPECT_EQ(read_register(rtc, kMinutes), 0x02);
  EXPECT_EQ(rtc.unix_seconds(), kTuesdayEvening + 58);
}

TEST_F(RtcTest, RollsOverTheYearAndTheCentury) {
  Mc146818Rtc rtc = make(4'102'444'799);  // 2099-12-31 23:59:59, a Thursday
  EXPECT_EQ(read_date(rtc), (Date{0x59, 0x59, 0x23, 5, 0x31, 0x12, 0x99, 0x20}));
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_date(rtc), (Date{0x00, 0x00, 0x00, 6, 0x01, 0x01, 0x00, 0x21}));
}

TEST_F(RtcTest, KnowsTheLeapYears) {
  Mc146818Rtc leap = make(1'835'395'199);  // 2028-02-28 23:59:59
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(leap, kDayOfMonth), 0x29);
  EXPECT_EQ(read_register(leap, kMonth), 0x02);
  Mc146818Rtc not_leap = make(4'107'542'399);  // 2100-02-28 23:59:59
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(not_leap, kDayOfMonth), 0x01);
  EXPECT_EQ(read_register(not_leap, kMonth), 0x03);
  Mc146818Rtc millennium = make(951'739'200 + 12 * 3600);  // 2000-02-29 00:00:00
  EXPECT_EQ(read_register(millennium, kDayOfMonth), 0x29);
}

TEST_F(RtcTest, UpdateInProgressDuringTheLast244Microseconds) {
  Mc146818Rtc rtc = make(kTuesdayEvening, 0);
  const auto uip = [&] { return (read_register(rtc, kStatusA) & kStatusAUpdateInProgress) != 0; };
  EXPECT_FALSE(uip());
  m_clock.advance_ns(kSecond - 244'141);
  EXPECT_FALSE(uip());
  m_clock.advance_ns(1);
  EXPECT_TRUE(uip()) << "244,140 ns before the update";
  EXPECT_EQ(read_register(rtc, kSeconds), 0x02) << "the update has not happened yet";
  m_clock.advance_ns(244'139);
  EXPECT_TRUE(uip());
  m_clock.advance_ns(1);
  EXPECT_FALSE(uip());
  EXPECT_EQ(read_register(rtc, kSeconds), 0x03);
  // No updates, no UIP: with SET, or with the divider held.
  m_clock.advance_ns(kSecond - 1'000);
  write_register(rtc, kStatusB, kStatusBSet | kStatusB24Hour);
  EXPECT_FALSE(uip());
  write_register(rtc, kStatusB, kStatusB24Hour);
  EXPECT_TRUE(uip());
  write_register(rtc, kStatusA, 0x70);
  EXPECT_FALSE(uip());
  EXPECT_EQ(read_register(rtc, kStatusA), 0x70) << "UIP is read only";
}

TEST_F(RtcTest, SetHoldsTheClockWhileTheGuestSetsIt) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusB, kStatusBSet | kStatusB24Hour | kStatusBUpdateInterrupt);
  EXPECT_EQ(read_register(rtc, kStatusB), kStatusBSet | kStatusB24Hour) << "SET clears UIE";
  EXPECT_FALSE(rtc.updating());
  m_clock.advance_ns(5 * kSecond);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x02) << "held";
  // 2030-06-15 12:34:56, written in BCD (the day of week is the date's).
  for (const auto& [index, value] : {std::pair{kSeconds, 0x56},
                                     {kMinutes, 0x34},
                                     {kHours, 0x12},
                                     {kDayOfMonth, 0x15},
                                     {kMonth, 0x06},
                                     {kYear, 0x30},
                                     {kCentury, 0x20}}) {
    write_register(rtc, index, static_cast<std::uint8_t>(value));
  }
  EXPECT_EQ(read_register(rtc, kMinutes), 0x34);
  write_register(rtc, kStatusB, kStatusB24Hour);
  EXPECT_EQ(rtc.unix_seconds(), 1'907'757'296);
  EXPECT_EQ(read_register(rtc, kDayOfWeek), 7) << "a Saturday";
  // The divider ran on under SET: still half a second into the second.
  m_clock.advance_ns(kSecond / 2 - 1);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x56);
  m_clock.advance_ns(1);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x57);
}

TEST_F(RtcTest, SetReleaseReadsTheTimeInTheFormatItWasWrittenIn) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusB, kStatusBBinary);                // binary, 12-hour
  write_register(rtc, kStatusB, kStatusBSet | kStatusBBinary);  // held in that format
  write_register(rtc, kHours, 0x80 | 9);                        // 9 PM
  write_register(rtc, kMinutes, 45);
  write_register(rtc, kStatusB, kStatusB24Hour);  // BCD, 24-hour from now on
  EXPECT_EQ(read_date(rtc), (Date{0x02, 0x45, 0x21, 3, 0x01, 0x12, 0x26, 0x20}));
}

TEST_F(RtcTest, AFormatChangeUnderSetConvertsNothing) {
  // The part keeps the bytes as they are: switched to binary under SET, the
  // BCD bytes of 2026-12-01 23:01:02 are read as binary ones when SET is
  // released: month 0x12 = 18 of year 3238 (0x20, 0x26) and hour 0x23 = 35
  // carry into 3239-06-02 11:01:02.
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusB, kStatusBSet | kStatusB24Hour);
  write_register(rtc, kStatusB, kStatusBSet | kStatusB24Hour | kStatusBBinary);
  EXPECT_EQ(read_register(rtc, kYear), 0x26) << "held as it was";
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBBinary);
  EXPECT_EQ(read_date(rtc), (Date{2, 1, 11, 5, 2, 6, 39, 32}));
}

TEST_F(RtcTest, AWriteWhileRunningSetsThatField) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kMinutes, 0x45);
  EXPECT_EQ(read_register(rtc, kMinutes), 0x45);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x02);
  EXPECT_EQ(rtc.unix_seconds(), kTuesdayEvening + 44 * 60);
  write_register(rtc, kDayOfWeek, 1);
  EXPECT_EQ(read_register(rtc, kDayOfWeek), 3) << "the day of week follows the date";
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x03);
}

TEST_F(RtcTest, OutOfRangeFieldsCarry) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBBinary);
  write_register(rtc, kStatusB, kStatusBSet | kStatusB24Hour | kStatusBBinary);
  write_register(rtc, kMonth, 13);  // month 13 of 2026: January 2027
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBBinary);
  EXPECT_EQ(read_register(rtc, kMonth), 1);
  EXPECT_EQ(read_register(rtc, kYear), 27);
}

TEST_F(RtcTest, DividerResetHoldsTheTimeAndReleasesHalfASecondLater) {
  Mc146818Rtc rtc = make(kTuesdayEvening, 0);
  write_register(rtc, kStatusA, 0x70);  // divider chain held in reset
  EXPECT_FALSE(rtc.updating());
  m_clock.advance_ns(10 * kSecond);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x02);
  m_clock.advance_ns(kSecond / 4);
  write_register(rtc, kStatusA, 0x26);
  m_clock.advance_ns(kSecond / 2 - 1);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x02);
  m_clock.advance_ns(1);
  EXPECT_EQ(read_register(rtc, kSeconds), 0x03) << "the first update half a second on";
}

TEST_F(RtcTest, IndexPortMasksTheNmiBit) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  out(rtc, 0, 0x80 | kStatusD);
  EXPECT_TRUE(rtc.nmi_disabled());
  EXPECT_EQ(rtc.index(), kStatusD);
  EXPECT_EQ(in(rtc, 1), 0x80);
  out(rtc, 0, kStatusB);
  EXPECT_FALSE(rtc.nmi_disabled());
  EXPECT_EQ(in(rtc, 1), 0x02);
  EXPECT_EQ(in(rtc, 0), 0xff) << "the index port reads as QEMU's";
  write_register(rtc, 0xff, 0x5a);  // index 0x7f
  EXPECT_EQ(read_register(rtc, 0x7f), 0x5a);
}

TEST_F(RtcTest, StatusCAndDAreReadOnly) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusC, 0xff);
  write_register(rtc, kStatusD, 0x00);
  EXPECT_EQ(read_register(rtc, kStatusC), 0x00);
  EXPECT_EQ(read_register(rtc, kStatusD), 0x80);
}

TEST_F(RtcTest, CmosRamKeepsWhatTheGuestWrites) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  for (unsigned index = 0x0e; index < Mc146818Rtc::kRegisterCount; ++index) {
    if (index == kCentury || index == kPs2Century) continue;
    write_register(rtc, static_cast<std::uint8_t>(index), static_cast<std::uint8_t>(index ^ 0xa5));
  }
  for (unsigned index = 0x0e; index < Mc146818Rtc::kRegisterCount; ++index) {
    if (index == kCentury || index == kPs2Century) continue;
    EXPECT_EQ(read_register(rtc, static_cast<std::uint8_t>(index)), index ^ 0xa5) << index;
  }
  write_register(rtc, kSecondsAlarm, 0x42);
  EXPECT_EQ(read_register(rtc, kSecondsAlarm), 0x42) << "alarm bytes are storage";
  EXPECT_EQ(read_register(rtc, kPs2Century), 0x20) << "0x37 is the century too";
  write_register(rtc, kPs2Century, 0x21);
  EXPECT_EQ(read_register(rtc, kCentury), 0x21);
}

TEST_F(RtcTest, WideAccessesReachIndexThenData) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  const std::uint8_t word[2] = {kYear, 0x00};
  rtc.write(0, word);  // outw: index 9, then 0x00 into the year
  EXPECT_EQ(read_register(rtc, kYear), 0x00);
  out(rtc, 0, kMonth);
  std::uint8_t read_back[2] = {0, 0};
  rtc.read(0, read_back);  // inw: the index port, then the month
  EXPECT_EQ(read_back[0], 0xff);
  EXPECT_EQ(read_back[1], 0x12);
}

TEST_F(RtcTest, StatusCFlagsUpdatesAndReadingClearsThem) {
  Mc146818Rtc rtc = make(kTuesdayEvening);
  write_register(rtc, kStatusA, 0x20);  // no periodic rate
  EXPECT_EQ(read_register(rtc, kStatusC), 0x00);
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kStatusC), kStatusCUpdateEnded);
  EXPECT_EQ(read_register(rtc, kStatusC), 0x00) << "a read clears the flags";
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBUpdateInterrupt);
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kStatusC), kStatusCInterruptRequest | kStatusCUpdateEnded);
}

TEST_F(RtcTest, StatusCFlagsThePeriodicRate) {
  Mc146818Rtc rtc = make(kTuesdayEvening, 0);
  // 0x26: 1024 Hz, a period of 32 cycles of the time base (976.5625 us).
  m_clock.advance_ns(976'000);
  EXPECT_EQ(read_register(rtc, kStatusC), 0x00);
  m_clock.advance_ns(1'000);
  EXPECT_EQ(read_register(rtc, kStatusC), kStatusCPeriodic);
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBPeriodicInterrupt);
  m_clock.advance_ns(976'563);
  EXPECT_EQ(read_register(rtc, kStatusC), kStatusCInterruptRequest | kStatusCPeriodic);
  write_register(rtc, kStatusA, 0x2f);  // 2 Hz
  m_clock.advance_ns(kSecond / 4);
  EXPECT_EQ(read_register(rtc, kStatusC), 0x00);
}

TEST_F(RtcTest, StatusCFlagsTheAlarm) {
  Mc146818Rtc rtc = make(kTuesdayEvening);  // 23:01:02
  write_register(rtc, kStatusA, 0x20);
  write_register(rtc, kHoursAlarm, 0x23);
  write_register(rtc, kMinutesAlarm, 0x01);
  write_register(rtc, kSecondsAlarm, 0x04);
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kStatusC), kStatusCUpdateEnded) << "23:01:03";
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kStatusC), kStatusCUpdateEnded | kStatusCAlarm) << "23:01:04";
  write_register(rtc, kSecondsAlarm, kAlarmDontCare);
  write_register(rtc, kMinutesAlarm, kAlarmDontCare);
  write_register(rtc, kHoursAlarm, kAlarmDontCare);
  write_register(rtc, kStatusB, kStatusB24Hour | kStatusBAlarmInterrupt);
  m_clock.advance_ns(kSecond);
  EXPECT_EQ(read_register(rtc, kStatusC),
            kStatusCInterruptRequest | kStatusCUpdateEnded | kStatusCAlarm)
      << "don't-care bytes match every second";
}

}  // namespace
}  // namespace vmlab::devices
