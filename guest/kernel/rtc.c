#include "rtc.h"

#include "arch.h"
#include "boot.h"
#include "cpu.h"

/* Index port bit 7 masks NMI on a PC; the driver leaves NMI enabled, as
 * Linux does. */
#define RTC_INDEX_MASK 0x7f

/* Reads until the clock settles: an update every second can fall between
 * two reads at most once or twice in a row. */
#define RTC_READ_ATTEMPTS 8

/* Time limits, by the TSC where its rate is known (always under vmlab: the
 * VMM says it), otherwise by a count of polls at an assumed 50 ns each, a
 * port access under QEMU's TCG: slower machines wait longer, never shorter,
 * and only a dead clock makes them wait at all. UIP lasts at most 244 us
 * plus the 1984 us update cycle (datasheet); a second tick comes within a
 * second. */
#define RTC_UPDATE_LIMIT_MS 10u
#define RTC_TICK_LIMIT_MS 3000u
#define RTC_POLLS_PER_MS 20000u

#define RTC_FIELD_COUNT 8

static uint16_t index_port;
static uint16_t data_port;
static bool present;

bool rtc_init(void) {
  const struct vmlab_device* rtc = boot_find_device(VMLAB_DEVICE_RTC_MC146818, 0);
  if (rtc == NULL || (rtc->flags & VMLAB_DEVICE_FLAG_MMIO) != 0 || rtc->size < 2) return false;
  index_port = (uint16_t)rtc->base;
  data_port = (uint16_t)(rtc->base + 1);
  present = true;
  return true;
}

uint8_t rtc_read_register(uint8_t index) {
  if (!present) return 0xff;
  port_write8(index_port, index & RTC_INDEX_MASK);
  return port_read8(data_port);
}

void rtc_write_register(uint8_t index, uint8_t value) {
  if (!present) return;
  port_write8(index_port, index & RTC_INDEX_MASK);
  port_write8(data_port, value);
}

struct time_limit {
  bool by_timestamp;
  uint64_t deadline;   /* TSC */
  uint64_t polls_left; /* otherwise */
};

static void time_limit_start(struct time_limit* limit, uint64_t milliseconds) {
  uint64_t hz = cpu_tsc_hz();
  limit->by_timestamp = hz != 0;
  limit->deadline = read_timestamp_counter() + hz / 1000 * milliseconds;
  limit->polls_left = milliseconds * RTC_POLLS_PER_MS;
}

/* Between two polls of the seconds register: a millisecond on the TSC where
 * its rate is known, so that waiting for the next second costs about a
 * thousand port reads (each an exit or a trap) rather than as many as fit
 * into a second. */
#define RTC_POLL_INTERVAL_MS 1u

static void pause_between_polls(void) {
  uint64_t hz = cpu_tsc_hz();
  if (hz == 0) return;
  uint64_t end = read_timestamp_counter() + hz / 1000 * RTC_POLL_INTERVAL_MS;
  while (read_timestamp_counter() < end) {
  }
}

static bool time_limit_passed(struct time_limit* limit) {
  if (limit->by_timestamp) return read_timestamp_counter() > limit->deadline;
  if (limit->polls_left == 0) return true;
  --limit->polls_left;
  return false;
}

bool rtc_wait_update_done(void) {
  struct time_limit limit;
  time_limit_start(&limit, RTC_UPDATE_LIMIT_MS);
  while ((rtc_read_register(RTC_STATUS_A) & RTC_A_UPDATE_IN_PROGRESS) != 0) {
    if (time_limit_passed(&limit)) return false;
  }
  return true;
}

static const uint8_t field_registers[RTC_FIELD_COUNT] = {
    RTC_SECONDS,      RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK,
    RTC_DAY_OF_MONTH, RTC_MONTH,   RTC_YEAR,  RTC_CENTURY,
};

static void read_fields(uint8_t fields[RTC_FIELD_COUNT]) {
  for (unsigned index = 0; index < RTC_FIELD_COUNT; ++index)
    fields[index] = rtc_read_register(field_registers[index]);
}

static bool fields_equal(const uint8_t left[RTC_FIELD_COUNT],
                         const uint8_t right[RTC_FIELD_COUNT]) {
  for (unsigned index = 0; index < RTC_FIELD_COUNT; ++index) {
    if (left[index] != right[index]) return false;
  }
  return true;
}

static unsigned decode(uint8_t value, bool binary) {
  return binary ? value : (unsigned)(value >> 4) * 10 + (value & 0x0f);
}

static void decode_fields(const uint8_t fields[RTC_FIELD_COUNT], uint8_t status_b,
                          struct rtc_time* time) {
  bool binary = (status_b & RTC_B_BINARY) != 0;
  uint8_t hours = fields[2];
  unsigned hour = decode(hours & (uint8_t)~RTC_HOURS_PM, binary);
  if ((status_b & RTC_B_24_HOUR) == 0) hour = hour % 12 + ((hours & RTC_HOURS_PM) != 0 ? 12 : 0);
  unsigned century = decode(fields[7], binary);
  /* A clock without the century byte (it reads 0) is in the 2000s. */
  if (century == 0) century = 20;
  time->second = (uint8_t)decode(fields[0], binary);
  time->minute = (uint8_t)decode(fields[1], binary);
  time->hour = (uint8_t)hour;
  time->weekday = (uint8_t)decode(fields[3], binary);
  time->day = (uint8_t)decode(fields[4], binary);
  time->month = (uint8_t)decode(fields[5], binary);
  time->year = century * 100 + decode(fields[6], binary);
  time->hour_register = hours;
}

bool rtc_read_time(struct rtc_time* time, unsigned* retries) {
  uint8_t status_b = rtc_read_register(RTC_STATUS_B);
  uint8_t previous[RTC_FIELD_COUNT];
  uint8_t current[RTC_FIELD_COUNT];
  if (!rtc_wait_update_done()) return false;
  read_fields(previous);
  for (unsigned attempt = 0; attempt < RTC_READ_ATTEMPTS; ++attempt) {
    if (!rtc_wait_update_done()) return false;
    read_fields(current);
    if (fields_equal(previous, current)) {
      decode_fields(current, status_b, time);
      return true;
    }
    for (unsigned index = 0; index < RTC_FIELD_COUNT; ++index)
      previous[index] = current[index];
    if (retries != NULL) ++*retries;
  }
  return false;
}

bool rtc_wait_next_second(const struct rtc_time* from, struct rtc_time* to) {
  bool binary = (rtc_read_register(RTC_STATUS_B) & RTC_B_BINARY) != 0;
  struct time_limit limit;
  time_limit_start(&limit, RTC_TICK_LIMIT_MS);
  /* Only the seconds register while waiting: two port accesses a poll. */
  while (decode(rtc_read_register(RTC_SECONDS), binary) == from->second) {
    if (time_limit_passed(&limit)) return false;
    pause_between_polls();
  }
  return rtc_read_time(to, NULL);
}

/* Days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
 * Algorithms"). */
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2 ? 1 : 0;
  int64_t era = (year >= 0 ? year : year - 399) / 400;
  int64_t year_of_era = year - era * 400;
  int64_t day_of_year = (153 * (int64_t)(month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

int64_t rtc_seconds(const struct rtc_time* time) {
  return days_from_civil(time->year, time->month, time->day) * 86400 + time->hour * 3600 +
         time->minute * 60 + time->second;
}

unsigned rtc_weekday(const struct rtc_time* time) {
  int64_t days = days_from_civil(time->year, time->month, time->day);
  int64_t weekday = (days + 4) % 7; /* 1970-01-01 was a Thursday */
  if (weekday < 0) weekday += 7;
  return (unsigned)weekday + 1;
}

static char* put_digits(char* text, unsigned value, unsigned digits) {
  for (unsigned place = digits; place > 0; --place) {
    text[place - 1] = (char)('0' + value % 10);
    value /= 10;
  }
  return text + digits;
}

void rtc_format(const struct rtc_time* time, char text[RTC_TEXT_SIZE]) {
  char* cursor = put_digits(text, time->year, 4);
  *cursor++ = '-';
  cursor = put_digits(cursor, time->month, 2);
  *cursor++ = '-';
  cursor = put_digits(cursor, time->day, 2);
  *cursor++ = 'T';
  cursor = put_digits(cursor, time->hour, 2);
  *cursor++ = ':';
  cursor = put_digits(cursor, time->minute, 2);
  *cursor++ = ':';
  cursor = put_digits(cursor, time->second, 2);
  *cursor++ = 'Z';
  *cursor = '\0';
}
