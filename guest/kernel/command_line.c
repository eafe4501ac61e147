#include "command_line.h"

#include "lib.h"
#include "pit.h"

static bool is_separator(char character) {
  return character == ' ' || character == '\t';
}

/* Decimal digits only, no sign, no overflow. */
static bool parse_decimal(const char* text, size_t length, uint64_t* value) {
  if (length == 0) return false;
  uint64_t result = 0;
  for (size_t index = 0; index < length; ++index) {
    if (text[index] < '0' || text[index] > '9') return false;
    uint64_t digit = (uint64_t)(text[index] - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  *value = result;
  return true;
}

/* 0 or 1, for the on/off keys. */
static bool parse_switch(const char* text, size_t length, bool* value) {
  if (text_equals(text, length, "0")) {
    *value = false;
  } else if (text_equals(text, length, "1")) {
    *value = true;
  } else {
    return false;
  }
  return true;
}

/* A decimal from minimum to maximum. */
static bool parse_bounded(const char* text, size_t length, uint64_t minimum, uint64_t maximum,
                          uint64_t* value) {
  uint64_t parsed;
  if (!parse_decimal(text, length, &parsed) || parsed < minimum || parsed > maximum) return false;
  *value = parsed;
  return true;
}

/* The disk workloads' keys (workloads.h, struct disk_options); sets
 * *problem for a bad value, ignores any other key. */
static void parse_disk_key(const char* key, size_t key_length, const char* value,
                           size_t value_length, struct disk_options* disk, const char** problem) {
  uint64_t number;
  bool on;
  if (text_equals(key, key_length, "disk-sector")) {
    if (!parse_decimal(value, value_length, &disk->first_sector))
      *problem = "disk-sector='%s' is not a decimal sector number";
  } else if (text_equals(key, key_length, "disk-request")) {
    if (parse_bounded(value, value_length, 1, DISK_MAXIMUM_REQUEST_SECTORS, &number)) {
      disk->request_sectors = (uint32_t)number;
    } else {
      *problem = "disk-request='%s' must be a sector count from 1 to 256";
    }
  } else if (text_equals(key, key_length, "disk-batch")) {
    if (parse_bounded(value, value_length, 1, DISK_MAXIMUM_BATCH_REQUESTS, &number)) {
      disk->batch_requests = (uint32_t)number;
    } else {
      *problem = "disk-batch='%s' must be a request count from 1 to 256";
    }
  } else if (text_equals(key, key_length, "disk-seed")) {
    if (!parse_decimal(value, value_length, &disk->seed))
      *problem = "disk-seed='%s' is not a decimal number";
  } else if (text_equals(key, key_length, "disk-irq")) {
    if (parse_switch(value, value_length, &on)) {
      disk->completion = on ? DISK_COMPLETION_INTERRUPT : DISK_COMPLETION_POLLED;
    } else {
      *problem = "disk-irq='%s' must be 0 or 1";
    }
  } else if (text_equals(key, key_length, "ata-lba48")) {
    if (!parse_switch(value, value_length, &disk->ata_lba48))
      *problem = "ata-lba48='%s' must be 0 or 1";
  } else if (text_equals(key, key_length, "virtio-indirect")) {
    if (!parse_switch(value, value_length, &disk->virtio_indirect))
      *problem = "virtio-indirect='%s' must be 0 or 1";
  } else if (text_equals(key, key_length, "virtio-event-idx")) {
    if (!parse_switch(value, value_length, &disk->virtio_event_index))
      *problem = "virtio-event-idx='%s' must be 0 or 1";
  }
}

/* A token quoted in a message, cut short: the buffer is for humans. */
static const char* quote(const char* text, size_t length, char* buffer, size_t capacity) {
  size_t shown = length < capacity - 1 ? length : capacity - 1;
  memcpy(buffer, text, shown);
  buffer[shown] = '\0';
  return buffer;
}

bool command_line_parse(const char* text, struct run_options* options, char* message,
                        size_t capacity) {
  options->workload = workload_find("hello", 5);
  options->count = 0;
  options->console = CONSOLE_MODE_POLLED;
  options->hz = DEFAULT_TIMER_HZ;
  options->skip_segment_checks = false;
  options->window = false;
  options->disk = (struct disk_options){
      .request_sectors = DISK_DEFAULT_REQUEST_SECTORS,
      .batch_requests = DISK_DEFAULT_BATCH_REQUESTS,
      .seed = DISK_DEFAULT_SEED,
      .completion = DISK_COMPLETION_INTERRUPT,
      .virtio_indirect = true,
  };
  bool count_given = false;
  bool valid = true; /* the first bad value is the one reported */
  char shown[48];

  const char* cursor = text;
  while (*cursor != '\0') {
    while (is_separator(*cursor))
      ++cursor;
    const char* key = cursor;
    while (*cursor != '\0' && !is_separator(*cursor))
      ++cursor;
    if (cursor == key) break;
    const char* equals = key;
    while (equals < cursor && *equals != '=')
      ++equals;
    if (equals == cursor) continue;
    size_t key_length = (size_t)(equals - key);
    const char* value = equals + 1;
    size_t value_length = (size_t)(cursor - value);
    const char* problem = NULL;

    if (text_equals(key, key_length, "workload")) {
      options->workload = workload_find(value, value_length);
      if (options->workload == NULL) {
        problem =
            "workload='%s' is not one of hello, syscalls, pagefaults, compute, kernel-compute, "
            "kernel-smc, cli-sti, pio, timer, rtc, segfault, fault, probes, hostile, disk-write, "
            "disk-read, disk-verify, dma-attack";
      }
    } else if (text_equals(key, key_length, "n")) {
      count_given = true;
      if (!parse_decimal(value, value_length, &options->count)) {
        options->count = 0;
        problem = "n='%s' is not a decimal count";
      }
    } else if (text_equals(key, key_length, "console")) {
      if (text_equals(value, value_length, "polled")) {
        options->console = CONSOLE_MODE_POLLED;
      } else if (text_equals(value, value_length, "irq")) {
        options->console = CONSOLE_MODE_INTERRUPT;
      } else {
        problem = "console='%s' must be polled or irq";
      }
    } else if (text_equals(key, key_length, "probes")) {
      if (text_equals(value, value_length, "all")) {
        options->skip_segment_checks = false;
      } else if (text_equals(value, value_length, "no-segment-checks")) {
        options->skip_segment_checks = true;
      } else {
        problem = "probes='%s' must be all or no-segment-checks";
      }
    } else if (text_equals(key, key_length, "window")) {
      if (text_equals(value, value_length, "0") || text_equals(value, value_length, "1")) {
        options->window = text_equals(value, value_length, "1");
      } else {
        problem = "window='%s' must be 0 or 1";
      }
    } else if (text_equals(key, key_length, "hz")) {
      uint64_t hz;
      if (parse_decimal(value, value_length, &hz) && hz >= PIT_MINIMUM_HZ && hz <= PIT_MAXIMUM_HZ) {
        options->hz = (uint32_t)hz;
      } else {
        problem = "hz='%s' must be a decimal from " PIT_HZ_RANGE_TEXT;
      }
    } else {
      /* Any other key is ignored, Linux-style ones included: QEMU's microvm
       * appends virtio_mmio.device=... (boot.c reads those). */
      parse_disk_key(key, key_length, value, value_length, &options->disk, &problem);
    }
    if (problem != NULL && valid) {
      format_to(message, capacity, problem, quote(value, value_length, shown, sizeof shown));
      valid = false;
    }
  }

  if (options->workload == NULL) return false;
  if (!count_given) options->count = options->workload->default_count;
  if (valid && options->count > options->workload->maximum_count) {
    format_to(message, capacity, "n=%lu is more than workload %s allows (%lu)", options->count,
              options->workload->name, options->workload->maximum_count);
    valid = false;
  }
  return valid;
}
