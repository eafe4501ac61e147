/* The MC146818 real-time clock and CMOS RAM of a PC: index port 0x70, data
 * port 0x71 (Motorola MC146818A datasheet), read the way PC kernels read it
 * (Linux's mc146818_get_time): wait until no update is in progress, read
 * every field, read again until two reads agree, and decode in the format
 * status B names (BCD or binary, 24-hour or 12-hour). */
#ifndef VMLAB_GUEST_RTC_H
#define VMLAB_GUEST_RTC_H

#include <stdbool.h>
#include <stdint.h>

#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS 0x04
#define RTC_DAY_OF_WEEK 0x06 /* 1 = Sunday */
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_STATUS_A 0x0a
#define RTC_STATUS_B 0x0b
#define RTC_STATUS_C 0x0c
#define RTC_STATUS_D 0x0d
#define RTC_CENTURY 0x32 /* the IBM PC AT's CMOS byte, QEMU's too */

#define RTC_A_UPDATE_IN_PROGRESS 0x80
#define RTC_A_DIVIDER_MASK 0x70
#define RTC_A_DIVIDER_32KHZ 0x20 /* DV2-DV0 = 010: the 32.768 kHz time base */
#define RTC_B_SET 0x80
#define RTC_B_BINARY 0x04  /* DM: 1 binary, 0 BCD */
#define RTC_B_24_HOUR 0x02 /* 1 = 24-hour, 0 = 12-hour with bit 7 of the hours = PM */
#define RTC_D_VALID 0x80   /* VRT: valid RAM and time */
#define RTC_HOURS_PM 0x80

struct rtc_time {
  uint32_t year; /* four digits: the century byte times 100 plus the year */
  uint8_t month; /* 1-12 */
  uint8_t day;   /* 1-31 */
  uint8_t hour;  /* 0-23, whatever the mode */
  uint8_t minute;
  uint8_t second;
  uint8_t weekday;       /* as the register says: 1 = Sunday */
  uint8_t hour_register; /* the hours byte as read, in the mode status B named */
};

/* Finds the clock in the device table; false without one. */
bool rtc_init(void);

uint8_t rtc_read_register(uint8_t index);
void rtc_write_register(uint8_t index, uint8_t value);

/* Waits until status A's UIP is clear (bounded): the time registers then
 * hold still for at least 244 us. False if it never cleared. */
bool rtc_wait_update_done(void);

/* The date and time, the standard way. `retries` counts the extra reads an
 * update in between cost. False if the clock never settled. */
bool rtc_read_time(struct rtc_time* time, unsigned* retries);

/* Waits (up to about three seconds) for the seconds register to move on from
 * `from`, then reads the time into `to`. False if it never moved. */
bool rtc_wait_next_second(const struct rtc_time* from, struct rtc_time* to);

/* "2026-12-01T23:01:02Z" (ISO 8601; the clock keeps UTC under vmlab and
 * under QEMU's default -rtc base=utc) into `text`. */
#define RTC_TEXT_SIZE 21
void rtc_format(const struct rtc_time* time, char text[RTC_TEXT_SIZE]);

/* Seconds since 1970-01-01 00:00:00 of a decoded time, and the day of the
 * week (1 = Sunday) of its date, both in the proleptic Gregorian calendar. */
int64_t rtc_seconds(const struct rtc_time* time);
unsigned rtc_weekday(const struct rtc_time* time);

#endif /* VMLAB_GUEST_RTC_H */
